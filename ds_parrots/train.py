"""Train a model: `deepspeed --num_gpus N ds_parrots/train.py <task> [flags]`, or
`python ds_parrots/train.py <task> [flags]` for one process. `<task> --help` lists every flag.

The launchers take a script path, so this file stays; the command itself is ds_parrots.cli.train.
"""

import os
import sys

if __name__ == "__main__":
    # Python puts this script's folder first on sys.path, where our packages (config, data, models, ...)
    # would shadow top-level modules of those names for every library; the installed package is imported.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

    from ds_parrots.cli.train import run_script

    run_script()
