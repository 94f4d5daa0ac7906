"""Theory: each bound stated as a function, and checks of empirical regret against it."""

__all__: list[str] = []
