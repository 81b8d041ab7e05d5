"""The paper's experiments, grid to figure (the CLI is ds_parrots.cli.reproduce)."""
