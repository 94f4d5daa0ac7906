"""dred agents (being built)."""
