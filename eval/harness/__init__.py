"""Benchmarks on lm-evaluation-harness: the catalogue of the paper's benchmarks, local files, generated task
YAMLs, and the run that shapes lm-eval's results for our files."""
