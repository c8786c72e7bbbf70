"""Read a stored copy back: the reader and the pack fetcher, shared by restore and verify."""
