"""A --train.out-dir on a read-only file system is refused before launch, naming the cause, even as root (who
writes a chmod 555 directory, so no permission bits can stand in for it): the real CLI runs in a private mount
namespace where the directory is a read-only bind mount. Skipped where such a mount cannot be made."""

import shutil
import subprocess
import sys

import pytest

from helpers import REPO, TRAIN, cpu_env

pytestmark = [pytest.mark.slow]


def in_read_only_mount(folder, argv):
    """argv run with `folder` bind-mounted read-only onto itself (unshare -m; root, or a user namespace)."""
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*prefix, "sh", "-c", script, "sh", "true"], capture_output=True)
        if probe.returncode == 0:
            return subprocess.run(
                [*prefix, "sh", "-c", script, "sh", *argv],
                cwd=REPO,
                env=cpu_env(),
                capture_output=True,
                text=True,
                timeout=300,
            )
    pytest.skip("no read-only bind mount can be made here (unshare -m / -rm refused)")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_a_read_only_out_dir_is_refused_before_launch_with_its_cause(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    argv = [sys.executable, TRAIN, "phonebook", "--preset", "tiny-dense", "--task.book-size", "20"]
    argv += [
        "--train.steps",
        "2",
        "--train.global-batch",
        "4",
        "--train.out-dir",
        str(runs),
        "--train.no-progress",
    ]
    proc = in_read_only_mount(runs, argv)
    lines = [l for l in proc.stderr.splitlines() if l.strip() and "real_accelerator" not in l]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{runs} is not writable (Read-only file system)" in lines[0], lines[0]
    assert list(runs.iterdir()) == []
