"""The command-line layer (above the runner, the experiments and the theory checks)."""
