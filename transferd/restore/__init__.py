"""Restore a stored copy into a target: a directory or a PostgreSQL database."""
