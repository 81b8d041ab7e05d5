"""Test hooks that attach from outside production code (fault injection)."""
