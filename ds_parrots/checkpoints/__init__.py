"""Checkpoints as files: load any of them (the library API), consolidate, export to and import from
Hugging Face."""
