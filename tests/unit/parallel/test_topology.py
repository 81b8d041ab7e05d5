"""`ds-parrots topology`: hostfiles read as DeepSpeed reads them, SLURM host lists expanded as scontrol
does, the world / expert-parallel / data-parallel sizes a launch builds, and one-line errors."""

import pytest

from ds_parrots.config import MoEConfig, TrainConfig, preset_model
from ds_parrots.errors import ConfigError
from ds_parrots.parallel.topology import (
    expand_nodelist,
    parse_hostfile,
    resolve,
    slurm_gpus_per_node,
    slurm_hosts,
)
from helpers import REPO


def hostfile(tmp_path, text):
    path = tmp_path / "hostfile"
    path.write_text(text)
    return path


def test_hostfile_lists_hosts_and_slots_in_order(tmp_path):
    path = hostfile(tmp_path, "# two 8-GPU boxes\n\nworker-1 slots=8\n  worker-2   slots=4  \n")
    assert parse_hostfile(path) == [("worker-1", 8), ("worker-2", 4)]


def test_shipped_hostfile_example_parses():
    assert parse_hostfile(REPO / "launch" / "hostfile.example") == [("worker-1", 8), ("worker-2", 8)]


@pytest.mark.parametrize(
    "text,message",
    [
        ("a slots=8\nb\n", "line 2: 'b' is not 'hostname slots=N'"),
        ("# c\na slots=8\nb slots=x\n", "line 3: 'b slots=x' is not 'hostname slots=N'"),
        ("a slots=8\nb slots=8\na slots=4\n", "line 3: host 'a' already listed on line 1"),
        ("a slots=0\n", "line 1: a has slots=0; give slots >= 1"),
        ("# only a comment\n\n", "lists no hosts"),
    ],
)
def test_bad_hostfile_names_file_and_line(tmp_path, text, message):
    path = hostfile(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        parse_hostfile(path)
    assert f"hostfile {path}" in str(e.value) and message in str(e.value)


def test_missing_hostfile_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no-such: no such file"):
        parse_hostfile(tmp_path / "no-such")


@pytest.mark.parametrize(
    "nodelist,hosts",
    [
        ("node7", ["node7"]),
        ("a,b,c", ["a", "b", "c"]),
        ("node[01-03]", ["node01", "node02", "node03"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("n[098-101]", ["n098", "n099", "n100", "n101"]),
        ("node[01-03,07],gpu5", ["node01", "node02", "node03", "node07", "gpu5"]),
        ("gpu5,node[1,3-4]", ["gpu5", "node1", "node3", "node4"]),
        ("r[1-2]-n[1-2]", ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]),
    ],
)
def test_slurm_nodelist_expands_like_scontrol(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("nodelist", ["node[1-", "node[]", "node[3-1]", "a,,b", "node[x]"])
def test_bad_slurm_nodelist_is_refused(nodelist):
    with pytest.raises(ConfigError, match="SLURM_JOB_NODELIST"):
        expand_nodelist(nodelist)


def test_slurm_env_gives_hosts_and_gpus():
    env = {"SLURM_JOB_NODELIST": "gpu[1-2]", "SLURM_GPUS_PER_NODE": "h100:4"}
    assert slurm_hosts(env) == ["gpu1", "gpu2"]
    assert slurm_gpus_per_node(env) == 4
    assert slurm_gpus_per_node({"SLURM_GPUS_ON_NODE": "2", "SLURM_GPUS_PER_NODE": "4"}) == 2
    assert slurm_gpus_per_node({}) == 8
    with pytest.raises(ConfigError, match="not set"):
        slurm_hosts({})


def moe64(ep):
    return preset_model("synthetic-d512-e64"), MoEConfig(ep_size=ep)


def test_resolve_one_node():
    model, moe = moe64(8)
    t = resolve([("localhost", 8)], model, moe, TrainConfig(global_batch=512, micro_batch=8))
    assert (t.world_size, t.ep_size, t.dp_size, t.expert_dp_size, t.experts_per_rank, t.accumulation) == (
        8,
        8,
        8,
        1,
        8,
        8,
    )
    assert t.summary() == (
        "topology: 1 node x 8 GPUs = world 8; expert-parallel 8 (64 experts, 8 per rank); "
        "data-parallel 8 (expert data-parallel 1); micro batch 8 x accumulation 8 x 8 ranks "
        "= global 512"
    )


def test_resolve_two_nodes():
    model, moe = moe64(8)
    t = resolve([("a", 8), ("b", 8)], model, moe, TrainConfig(global_batch=512, micro_batch=8))
    assert (t.world_size, t.ep_size, t.dp_size, t.expert_dp_size, t.experts_per_rank, t.accumulation) == (
        16,
        8,
        16,
        2,
        8,
        4,
    )
    assert t.global_batch == 512


def test_resolve_dense_has_no_expert_split():
    t = resolve(
        [("a", 2)], preset_model("tiny-dense"), MoEConfig(), TrainConfig(global_batch=8, micro_batch=2)
    )
    assert "expert-parallel 1 (dense); data-parallel 2;" in t.summary() and t.accumulation == 2
