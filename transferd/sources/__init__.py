"""Readers of what is copied: a directory tree, a live PostgreSQL database, an Azure container."""
