//! cairn-ingest: to be written.
