"""Agents: offline, online and hybrid robust RL algorithms (added by later issues)."""

__all__: list[str] = []
