"""A live PostgreSQL database: connection, snapshot, listing, COPY and its tools."""
