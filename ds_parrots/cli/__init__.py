"""Every console command (`ds-parrots ...`, the training entry point) and the one wrapper that turns
our exceptions into one-line messages and exit codes."""

from ds_parrots.cli.main import console, main

__all__ = ["console", "main"]
