"""Verify a stored copy: its signed manifests, its objects, its contents, against a source."""
