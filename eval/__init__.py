"""Offline evaluation of ds_parrots checkpoints: synthetic tasks, benchmark suites, generalization gap, figures."""
