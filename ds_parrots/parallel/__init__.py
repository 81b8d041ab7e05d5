"""Parallel training with DeepSpeed: the one package that knows DeepSpeed's config, layers, checkpoint
files and process groups."""
