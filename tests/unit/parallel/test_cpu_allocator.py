"""--train.cpu-allocator keep leaves the user's own malloc settings alone (the page-fault probes that show
what it does are in tests/integration/parallel/test_cpu_allocator_probe.py)."""

import pytest


@pytest.mark.parametrize(
    "env,reason",
    [
        ({"MALLOC_MMAP_THRESHOLD_": "131072"}, "MALLOC_MMAP_THRESHOLD_ is set"),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "GLIBC_TUNABLES sets glibc.malloc"),
        ({"LD_PRELOAD": "/nonexistent/libjemalloc.so.2"}, "jemalloc is preloaded"),
    ],
)
def test_the_users_own_malloc_settings_are_left_alone(env, reason, monkeypatch):
    from ds_parrots.parallel.cpu_allocator import keep_freed_memory

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert keep_freed_memory() == f"left as set ({reason})"
