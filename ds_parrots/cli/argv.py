"""Argument lists as launchers and wrappers hand them over."""

from __future__ import annotations

from ds_parrots.errors import ConfigError


def join_extras(argv: list[str]) -> list[str]:
    """Gather every `--extra VALUE` into one `--extra=VALUE`: the parser takes a value starting with `--` for a
    flag unless it is attached with `=`, and users naturally write --extra "--train.steps 100"."""
    out, extras, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--extra":
            if i + 1 == len(argv):
                raise ConfigError(
                    "--extra needs a value: the train flags as one quoted string, e.g. --extra "
                    '"--train.steps 100"'
                )
            extras.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("--extra="):
            extras.append(a.split("=", 1)[1])
        else:
            out.append(a)
        i += 1
    return out + ([f"--extra={' '.join(extras)}"] if extras else [])


def strip_local_rank(argv: list[str]) -> list[str]:
    """The deepspeed launcher appends --local_rank=N (newer ones --local-rank N); the rank comes from LOCAL_RANK
    in the environment, so the flag and its value are dropped."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--local_rank", "--local-rank"):
            skip = True
        elif not a.startswith(("--local_rank=", "--local-rank=")):
            out.append(a)
    return out


def parse_with_extras(cls: type, argv: list[str], prog: str):
    """tyro's parse of `cls` for a command that takes `--extra "--flag v"` (sweep, reproduce), with the
    dataclass's docstring as its description."""
    import inspect

    import tyro

    return tyro.cli(cls, args=join_extras(argv), prog=prog, description=inspect.cleandoc(cls.__doc__))
