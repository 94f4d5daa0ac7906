"""neural agents (being built)."""
