"""An Azure Blob container: sign-in, listing and reading, blob names to catalog paths."""
