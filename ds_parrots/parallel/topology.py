"""`ds-parrots topology`: the world a launch will build (nodes, GPUs, expert- and data-parallel sizes,
gradient accumulation), checked before any process starts.

    ds-parrots topology --gpus-per-node 8 [--num-nodes 2] -- phonebook --preset synthetic-d512-e64 --moe.ep-size 8
    ds-parrots topology --hostfile launch/hostfile.example -- two-hop --preset tiny-moe
    ds-parrots topology --slurm -- pretrain --preset paper-moe-d512-e64 --moe.ep-size 8   (inside an allocation)

Everything after `--` is the train.py command line (subcommand first); it is parsed by train.py's own
parser and checked by engine.validate, the same checks a launched run makes, so a launch script that
calls this first fails in a second instead of after every node has started.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ds_parrots.config import ModelConfig, MoEConfig, TrainConfig
from ds_parrots.errors import ConfigError

# DeepSpeed's own hostfile rule (launcher/runner.py _parse_hostfile): a host, blanks, `slots=<digits>`,
# anything after that ignored; lines starting with # and blank lines skipped.
HOSTFILE_LINE = re.compile(r"^(\S+)\s+slots=(\d+)")
# DeepSpeed would take the first of two slots= on a line and drop the second without a word.
SLOTS = re.compile(r"(?:^|\s)slots=")


def host_key(host: str) -> str:
    """A host name as DNS compares it: case-insensitive, a trailing dot (the fully qualified form) dropped, so
    that node1, NODE1 and node1. are one node."""
    return host.rstrip(".").lower()


DEFAULT_SLURM_GPUS = 8


@dataclass
class TopologyArgs:
    """Print the world a launch builds: nodes x GPUs, expert-parallel and data-parallel sizes, experts per rank
    and gradient accumulation; fail (exit 2) with the flag to change if the combination cannot run. Give the
    machines one way: --hostfile, --slurm, or --gpus-per-node [--num-nodes]; then `--` and the train.py
    arguments (subcommand first)."""

    hostfile: Optional[Path] = None
    """DeepSpeed hostfile (`hostname slots=N` per line, # comments) listing the nodes and their GPUs."""
    num_nodes: Optional[int] = None
    """Number of nodes (with --gpus-per-node; default 1). Not with --hostfile or --slurm."""
    gpus_per_node: Optional[int] = None
    """GPUs (ranks) per node. With --slurm it overrides SLURM_GPUS_ON_NODE / SLURM_GPUS_PER_NODE."""
    slurm: bool = False
    """Take the nodes from SLURM_JOB_NODELIST and the ranks per node from DS_PARROTS_RANKS_PER_NODE, else the
    GPUs (SLURM_GPUS_ON_NODE / SLURM_GPUS_PER_NODE), else on CPU-only nodes the tasks per node
    (SLURM_NTASKS_PER_NODE / SLURM_TASKS_PER_NODE), else 8 GPUs; run inside an allocation."""
    cpu: bool = False
    """The ranks are CPU processes (no GPUs): the topology line says CPU ranks instead of GPUs."""


def describe_machines(hosts: list[tuple[str, int]], unit: str = "GPUs") -> str:
    """`2 nodes x 8 GPUs = world 16`, or `2 nodes (8 + 4 GPUs) = world 12` when nodes differ; `unit` is
    "CPU ranks" on nodes without GPUs."""
    slots = [s for _, s in hosts]
    nodes = f"{len(hosts)} node{'s' if len(hosts) > 1 else ''}"
    gpus = f"x {slots[0]} {unit}" if len(set(slots)) == 1 else f"({' + '.join(map(str, slots))} {unit})"
    return f"{nodes} {gpus} = world {sum(slots)}"


@dataclass
class Topology:
    """The resolved sizes of one launch."""

    hosts: list[tuple[str, int]]
    """(host, ranks on it) in node-rank order."""
    ep_size: int
    """Expert-parallel size: ranks that share one copy of the experts, each holding a slice."""
    num_experts: int
    """Experts per MoE layer (1: dense)."""
    micro_batch: int
    """Sequences per rank per forward/backward."""
    accumulation: int
    """Micro batches per optimizer step on each rank."""

    @property
    def world_size(self) -> int:
        return sum(slots for _, slots in self.hosts)

    @property
    def dp_size(self) -> int:
        # Dense weights are replicated on every rank, so every rank is a data-parallel rank.
        return self.world_size

    @property
    def expert_dp_size(self) -> int:
        """Copies of each expert (ranks that hold the same expert slice)."""
        return self.world_size // self.ep_size

    @property
    def experts_per_rank(self) -> int:
        return self.num_experts // self.ep_size

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.accumulation * self.world_size

    def summary(self, unit: str = "GPUs") -> str:
        if self.num_experts > 1:
            experts = f"expert-parallel {self.ep_size} ({self.num_experts} experts, {self.experts_per_rank} per rank)"
            data = f"data-parallel {self.dp_size} (expert data-parallel {self.expert_dp_size})"
        else:
            experts, data = "expert-parallel 1 (dense)", f"data-parallel {self.dp_size}"
        return (
            f"topology: {describe_machines(self.hosts, unit)}; {experts}; {data}; micro batch {self.micro_batch} x "
            f"accumulation {self.accumulation} x {self.world_size} ranks = global {self.global_batch}"
        )


def parse_hostfile(path) -> list[tuple[str, int]]:
    """(host, slots) per line of a DeepSpeed hostfile, in file order; ConfigError names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"hostfile {path}: no such file; write one line 'hostname slots=N' per node "
            "(see launch/hostfile.example)"
        )
    hosts: list[tuple[str, int]] = []
    first_line: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = HOSTFILE_LINE.match(line)
        if not match:
            raise ConfigError(
                f"hostfile {path} line {number}: {line!r} is not 'hostname slots=N'; fix or "
                "comment out the line with #"
            )
        host, slots = match.group(1), int(match.group(2))
        if len(SLOTS.findall(line.split("#", 1)[0])) > 1:
            raise ConfigError(
                f"hostfile {path} line {number}: {line!r} gives slots= more than once; give each node one "
                "slots=N (its GPUs)"
            )
        key = host_key(host)
        if key in first_line:
            seen, at = first_line[key]
            same = (
                ""
                if seen == host
                else f" as {seen!r} (names compare case-insensitively, without a trailing dot)"
            )
            raise ConfigError(
                f"hostfile {path} line {number}: host {host!r} already listed on line {at}{same}; list "
                "each node once with all its slots"
            )
        if slots < 1:
            raise ConfigError(
                f"hostfile {path} line {number}: {host} has slots={slots}; give slots >= 1 "
                "(the GPUs to use on that node) or remove the line"
            )
        first_line[key] = (host, number)
        hosts.append((host, slots))
    if not hosts:
        raise ConfigError(
            f"hostfile {path} lists no hosts (only blank or comment lines); add one line "
            "'hostname slots=N' per node"
        )
    return hosts


def _split_top_level(text: str) -> list[str]:
    """`a[1-2,4],b` -> ['a[1-2,4]', 'b']: commas inside brackets belong to a range list."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compressed host list expanded as `scontrol show hostnames` does: `node[01-03,07],gpu5` ->
    node01 node02 node03 node07 gpu5; zero padding follows the range start; several bracket groups in one
    name multiply out (`r[1-2]n[1-2]` -> r1n1 r1n2 r2n1 r2n2)."""

    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"SLURM_JOB_NODELIST={nodelist!r}: {why}; expected a SLURM host list like 'node[01-03,07],gpu5'"
        )

    if nodelist.count("[") != nodelist.count("]"):
        raise bad("unbalanced brackets")
    hosts: list[str] = []
    for item in _split_top_level(nodelist.strip()):
        if not re.fullmatch(r"(?:[^\[\]]|\[[^\[\]]+\])+", item):
            raise bad(f"cannot read host {item!r}")
        names = [""]
        for part in re.findall(r"\[[^\[\]]+\]|[^\[\]]+", item):
            if not part.startswith("["):
                names = [n + part for n in names]
                continue
            values = []
            for r in part[1:-1].split(","):
                lo, _, hi = r.partition("-")
                if not lo.isdigit() or not (hi or lo).isdigit() or int(hi or lo) < int(lo):
                    raise bad(f"bad range {r!r}")
                values += [str(v).zfill(len(lo)) for v in range(int(lo), int(hi or lo) + 1)]
            names = [n + v for n in names for v in values]
        hosts += names
    return hosts


def slurm_hosts(env: Mapping[str, str]) -> list[str]:
    """The job's hosts in node-id order, from SLURM_JOB_NODELIST (or SLURM_NODELIST) in `env`."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise ConfigError(
            "--slurm: SLURM_JOB_NODELIST is not set; run inside a SLURM allocation (sbatch / salloc) "
            "or give --hostfile / --gpus-per-node instead"
        )
    return expand_nodelist(nodelist)


def slurm_gpus_per_node(env: Mapping[str, str]) -> int:
    """SLURM_GPUS_ON_NODE, else SLURM_GPUS_PER_NODE (which may carry a type, `a100:8`), else 8."""
    for name in ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"):
        value = env.get(name)
        if value:
            count = value.rsplit(":", 1)[-1]
            if not count.isdigit() or int(count) < 1:
                raise ConfigError(f"{name}={value!r} is not a GPU count >= 1; give --gpus-per-node")
            return int(count)
    return DEFAULT_SLURM_GPUS


def slurm_ranks_per_node(env: Mapping[str, str]) -> tuple[int, str]:
    """(ranks per node, "GPUs" or "CPU ranks") of a SLURM job: DS_PARROTS_RANKS_PER_NODE if set, else one rank
    per GPU of the node, else (a CPU-only node) one per task of --ntasks-per-node, else 8 GPUs."""
    gpu_names = ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE")
    unit = "GPUs" if any(env.get(n) for n in gpu_names) else "CPU ranks"
    given = env.get("DS_PARROTS_RANKS_PER_NODE")
    if given:
        if not given.isdigit() or int(given) < 1:
            raise ConfigError(
                f"DS_PARROTS_RANKS_PER_NODE={given!r} is not a count >= 1; set it to the ranks per node"
            )
        return int(given), unit
    if unit == "GPUs":
        return slurm_gpus_per_node(env), unit
    for name in ("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        value = env.get(name)
        if value:
            # SLURM_TASKS_PER_NODE reads like 2(x3),1: the count of the first node.
            count = re.match(r"\d+", value)
            if not count or int(count.group()) < 1:
                raise ConfigError(
                    f"{name}={value!r} is not a task count >= 1; submit with --ntasks-per-node=N"
                )
            return int(count.group()), unit
    return DEFAULT_SLURM_GPUS, "GPUs"


def rank_unit(args: TopologyArgs, env: Mapping[str, str]) -> str:
    """What a rank is, for the topology line: "CPU ranks" with --cpu or on a CPU-only SLURM job, else "GPUs"."""
    if args.cpu:
        return "CPU ranks"
    if args.slurm and args.gpus_per_node is None:
        return slurm_ranks_per_node(env)[1]
    return "GPUs"


def machines(args: TopologyArgs, env: Mapping[str, str]) -> list[tuple[str, int]]:
    """(host, ranks) per node from whichever one of --hostfile / --slurm / --gpus-per-node was given."""
    if args.hostfile is not None and args.slurm:
        raise ConfigError("--hostfile and --slurm both name the nodes; give one of them")
    if args.hostfile is not None:
        if args.num_nodes is not None or args.gpus_per_node is not None:
            raise ConfigError("--hostfile sets the nodes and their slots; drop --num-nodes / --gpus-per-node")
        return parse_hostfile(args.hostfile)
    if args.slurm:
        if args.num_nodes is not None:
            raise ConfigError("--slurm takes the nodes from SLURM_JOB_NODELIST; drop --num-nodes")
        gpus = args.gpus_per_node if args.gpus_per_node is not None else slurm_ranks_per_node(env)[0]
        if gpus < 1:
            raise ConfigError(f"--gpus-per-node={gpus} must be >= 1")
        return [(host, gpus) for host in slurm_hosts(env)]
    if args.gpus_per_node is None:
        raise ConfigError(
            "no machines given; pass --hostfile PATH, --slurm, or --gpus-per-node G [--num-nodes N]"
        )
    num_nodes = 1 if args.num_nodes is None else args.num_nodes
    for flag, value in (("--num-nodes", num_nodes), ("--gpus-per-node", args.gpus_per_node)):
        if value < 1:
            raise ConfigError(f"{flag}={value} must be >= 1")
    return [(f"node{i}", args.gpus_per_node) for i in range(num_nodes)]


def resolve(hosts: list[tuple[str, int]], model: ModelConfig, moe: MoEConfig, train: TrainConfig) -> Topology:
    """The sizes of a launch on `hosts`; ConfigError (from engine.validate, the checks a run makes) if the
    model, expert parallelism or batch cannot run on that world."""
    # engine imports torch: only once the arguments parsed.
    from ds_parrots.parallel.ds_config import gradient_accumulation, micro_batch_size, validate

    world = sum(slots for _, slots in hosts)
    validate(model, moe, train, world)
    return Topology(
        hosts=hosts,
        ep_size=moe.ep_size,
        num_experts=model.num_experts,
        micro_batch=micro_batch_size(train, world),
        accumulation=gradient_accumulation(train, world),
    )
