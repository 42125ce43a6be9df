"""Peer servers the benchmark starts: each file runs inside its own peer's environment."""
