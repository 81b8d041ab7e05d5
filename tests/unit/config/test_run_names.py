"""A run name is one directory under --train.out-dir: nothing that leaves it, nothing the file system refuses."""

import pytest

from ds_parrots.config import TrainConfig
from ds_parrots.errors import ConfigError


@pytest.mark.parametrize(
    "name,why",
    [
        ("../../escaped", "without '/'"),
        ("..", "not '.' or '..'"),
        (".", "not '.' or '..'"),
        ("", "non-empty"),
        ("/etc", "without '/'"),
        ("a/b", "without '/'"),
        ("a\0b", "NUL"),
        ("r" * 256, "256 bytes"),
        ("é" * 128, "256 bytes"),  # 128 characters, 2 bytes each: the limit is in bytes
    ],
)
def test_a_run_name_that_is_not_one_directory_is_refused(name, why):
    with pytest.raises(ConfigError, match=r"^--train\.run-name=") as e:
        TrainConfig(run_name=name)
    assert why in str(e.value)


@pytest.mark.parametrize("name", ["r" * 255, "é" * 127, "run.v2", "..hidden", "a b", "a..b"])
def test_names_within_the_rules_are_kept_under_out_dir(name, tmp_path):
    train = TrainConfig(run_name=name, out_dir=str(tmp_path))
    run_dir = train.run_dir("derived")
    assert run_dir.parent == tmp_path and run_dir.name == name
    run_dir.mkdir()  # the file system takes it too


def test_a_derived_name_is_checked_as_well_and_names_the_flag_to_pass(tmp_path):
    train = TrainConfig(out_dir=str(tmp_path))
    assert train.run_dir("phonebook-n20-s0") == tmp_path / "phonebook-n20-s0"
    with pytest.raises(ConfigError, match="derived run name 'pretrain-../x-s0'.*pass --train.run-name"):
        train.run_dir("pretrain-../x-s0")


def test_an_out_dir_component_longer_than_a_directory_name_is_refused():
    with pytest.raises(ConfigError, match="--train.out-dir.*300 bytes"):
        TrainConfig(out_dir="runs/" + "o" * 300)
    TrainConfig(out_dir="../runs/" + "o" * 255)  # '..' and long-but-legal components are fine there
