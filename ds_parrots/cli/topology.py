"""`ds-parrots topology`: the world / expert / data-parallel sizes a launch gets."""

from __future__ import annotations

from ds_parrots.parallel.topology import TopologyArgs, describe_machines, machines, rank_unit, resolve


def main(argv: list[str]) -> int:
    import inspect
    import os

    import tyro

    own, train_argv = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = tyro.cli(
        TopologyArgs, args=own, prog="ds-parrots topology", description=inspect.cleandoc(TopologyArgs.__doc__)
    )
    hosts = machines(args, os.environ)
    unit = rank_unit(args, os.environ)
    if not train_argv:
        # Machines only: nothing to say about experts or batches.
        print(
            f"topology: {describe_machines(hosts, unit)} (add `-- <subcommand> [train flags]` for the parallel "
            "sizes and batch)"
        )
        return 0
    from ds_parrots.cli.train import parse

    run = parse(train_argv)
    print(resolve(hosts, run.model, run.moe, run.train).summary(unit), flush=True)
    return 0
