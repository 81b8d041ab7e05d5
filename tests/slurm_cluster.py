"""A real one-node SLURM for the tests: munged, slurmctld -D and slurmd -D started as plain processes (no
systemd, no cgroups) on a private configuration, munge socket and spool in one folder, on free ports.

    with SlurmCluster.start(folder) as slurm:      # SlurmUnavailable (with the reason) where it cannot start
        job = slurm.sbatch(["--ntasks-per-node=2", "launch/slurm.sbatch", ...], cwd=REPO)
        slurm.wait_done(job)                          # the job's final state, e.g. "COMPLETED 0:0"

Every client command runs with SLURM_CONF pointing at this configuration, so a system SLURM is never touched.
Finished jobs are read back from jobcomp/filetxt (no slurmdbd needed): one line per run of a job, requeues
included.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

DAEMONS = ("munged", "slurmctld", "slurmd")
CPUS = 2


class SlurmUnavailable(Exception):
    """SLURM cannot start here; the message says why (the tests skip with it)."""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _which(name: str) -> Optional[str]:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.is_file()), None
    )


def _real_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            # Below the node's total, or slurmd marks the node invalid for having less than configured.
            return max(1, int(line.split()[1]) // 1024 // 2)
    return 1


CONF = """\
ClusterName=dsparrots
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket={dir}/munge/munge.socket,cred_expire=10
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool/%n
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# The main scheduling loop every 2 s (default 60): a requeued job starts as soon as it may.
SchedulerParameters=sched_interval=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={dir}/jobcomp.txt
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
InactiveLimit=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    def __init__(self, folder: Path):
        self.dir = Path(folder)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.dir / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        for name in [k for k in self.env if k.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
            if name != "SLURM_CONF":
                del self.env[name]

    @classmethod
    def start(cls, folder: Path, timeout: float = 60) -> SlurmCluster:
        paths = {name: _which(name) for name in (*DAEMONS, "mungekey", "sbatch", "scontrol", "sinfo")}
        missing = [name for name, path in paths.items() if path is None]
        if missing:
            raise SlurmUnavailable(
                f"SLURM is not installed here ({', '.join(missing)} missing); "
                "install it with: apt-get install slurm-wlm munge"
            )
        if os.geteuid() != 0:
            raise SlurmUnavailable("slurmd must run as root to start jobs; run the SLURM tests as root")
        cluster = cls(folder)
        try:
            cluster._start(paths, timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start(self, paths: dict, timeout: float) -> None:
        d = self.dir
        for sub in ("munge", "state", "spool"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "munge").chmod(0o700)
        key = d / "munge" / "munge.key"
        subprocess.run([paths["mungekey"], "-c", "-f", "-k", str(key)], check=True, capture_output=True)
        key.chmod(0o600)
        ctld_port, slurmd_port = _free_ports(2)
        self.conf.write_text(
            CONF.format(
                host=self.host,
                ctld_port=ctld_port,
                slurmd_port=slurmd_port,
                user=os.environ.get("USER") or "root",
                dir=d,
                cpus=CPUS,
                memory=_real_memory_mb(),
            )
        )
        munge = d / "munge"
        self._spawn(
            "munged",
            [
                paths["munged"],
                "-F",
                "--force",
                f"--key-file={key}",
                f"--socket={munge / 'munge.socket'}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={munge / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
        )
        self._wait(lambda: (munge / "munge.socket").exists(), timeout, "munged did not create its socket")
        self._spawn("slurmctld", [paths["slurmctld"], "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", [paths["slurmd"], "-D", "-N", self.host, "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, "the node did not become idle")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.dir / f"{name}.out", "w")
        # Own session: a signal meant for the test run (Ctrl-C) does not reach the daemons half-way.
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise SlurmUnavailable(f"{what}: {', '.join(dead) or 'timeout'}; {self.logs_tail()}")
            time.sleep(0.3)

    def _node_idle(self) -> bool:
        out = self.cmd(["sinfo", "-h", "-N", "-o", "%T"], check=False).stdout.strip()
        return out == "idle"

    def logs_tail(self, lines: int = 15) -> str:
        parts = []
        for name in (
            "munged.out",
            "munge/munged.log",
            "slurmctld.log",
            "slurmd.log",
            "slurmctld.out",
            "slurmd.out",
        ):
            path = self.dir / name
            if path.is_file() and path.stat().st_size:
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                parts.append(f"--- {path}:\n{tail}")
        return "\n".join(parts)

    def cmd(self, args: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            args, env=kw.pop("env", self.env), capture_output=True, text=True, timeout=60, **kw
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def sbatch(self, args: list[str], cwd: Path, env: Optional[dict] = None) -> int:
        out = self.cmd(["sbatch", "--parsable", *args], cwd=cwd, env=dict(self.env, **(env or {}))).stdout
        return int(out.strip().split(";")[0])

    def job(self, job_id: int) -> dict:
        """`scontrol show job` as a dict (JobState, ExitCode, Restarts, ...); {} once the job is forgotten."""
        proc = self.cmd(["scontrol", "show", "job", "-o", str(job_id)], check=False)
        fields = {}
        for item in proc.stdout.split():
            key, _, value = item.partition("=")
            fields.setdefault(key, value)
        return fields

    def completions(self, job_id: int) -> list[dict]:
        """One dict per finished run of the job (a requeued job has several), from jobcomp/filetxt."""
        path = self.dir / "jobcomp.txt"
        runs = []
        for line in path.read_text().splitlines() if path.is_file() else []:
            fields = dict(item.partition("=")[::2] for item in line.split())
            if fields.get("JobId") == str(job_id):
                runs.append(fields)
        return runs

    def wait_state(self, job_id: int, states: tuple[str, ...], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not in {states} after {timeout} s: {info}")
            time.sleep(0.5)

    def wait_done(self, job_id: int, timeout: float = 300) -> dict:
        return self.wait_state(
            job_id, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"), timeout
        )

    def stop(self) -> list[str]:
        """Stop every daemon (slurmd, slurmctld, munged: the reverse of start); the names of any that had
        to be killed."""
        killed = []
        for name in reversed(DAEMONS):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(name)
        return killed

    def alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is None]

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
