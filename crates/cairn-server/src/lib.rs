//! cairn-server: to be written.
