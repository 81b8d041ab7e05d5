"""Data: tokenizers, token files, sampling."""
