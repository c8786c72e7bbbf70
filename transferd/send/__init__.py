"""Send: the pipeline that reads, seals and uploads a source, its journal, and publication."""
