"""`python -m ds_parrots.cli ...` is the `ds-parrots` console command."""

from ds_parrots.cli.main import console

console()
