"""Provenance of a study: content hashes (the manifest), the Workflow Run RO-Crate, the deterministic
submission bundle, and its verification and audit (unpack, re-run, compare byte for byte)."""
