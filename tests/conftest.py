import os

import pytest

from helpers import RENDEZVOUS_VARS


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu are skipped on a machine without CUDA (torch is imported only if one is collected)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is false)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture
def process_group():
    """A 1-rank gloo group inside the pytest process, for tests that build a DeepSpeed engine or layer here.
    ensure_process_group writes the rendezvous variables into os.environ; they are put back afterwards, else
    every subprocess started later inherits MASTER_PORT, a port this process now holds (EADDRINUSE)."""
    from ds_parrots.parallel.process_group import ensure_process_group

    saved = {name: os.environ.get(name) for name in RENDEZVOUS_VARS}
    ensure_process_group()
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
