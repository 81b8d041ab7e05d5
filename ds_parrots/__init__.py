"""ds_parrots: a DeepSpeed reproduction of "Mixture of Parrots" (dense vs MoE on memorization and reasoning)."""
