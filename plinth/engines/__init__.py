"""Existing engines Plinth runs its work on (an edge, like the CLI and HTTP): Ray."""
