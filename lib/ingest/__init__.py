"""Ingestion: formats (lib/ingest/formats/), detection, validation, quarantine, sources."""
