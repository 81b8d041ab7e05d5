"""The training run: the Trainer (step + loop) and its callbacks, optimizer and schedule, checkpoints,
and the recipes of each subcommand."""
