"""One recipe per training subcommand: what it trains on, how it is scored, what results.json holds."""
