"""Grounded answers: ingest documents, hybrid search, and cited answers. See docs/retrieval.md."""
