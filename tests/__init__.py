"""transferd's test suite; a package so test modules are imported by their full names."""
