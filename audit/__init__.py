"""Audit: canonical journal encoding, chain verification, and (later) Merkle logs."""
