"""The paper's grids expanded into runs: plan, launch or emit SLURM jobs (the CLI is ds_parrots.cli.sweep)."""
