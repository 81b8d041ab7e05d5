#!/usr/bin/env bash
# Train on the GPUs of this machine: launch/single_node.sh <N_GPUS> <subcommand> [train flags...]
# Prints the resolved topology, then runs `deepspeed --num_gpus N ds_parrots/train.py <subcommand> ...`.
# Environment: see launch/README.md (DS_PARROTS_PYTHON, DS_PARROTS_DEEPSPEED, DS_PARROTS_MASTER_PORT,
# DS_PARROTS_DRY_RUN).
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    echo "usage: $0 <N_GPUS> <phonebook|shortest-path|two-hop|pretrain> [train flags...]" >&2
    echo "  e.g. $0 8 phonebook --preset synthetic-d512-e64 --moe.ep-size 8 (see launch/README.md)" >&2
    exit 2
}
[[ $# -ge 2 ]] || usage
[[ "$1" =~ ^[1-9][0-9]*$ ]] || { echo "error: N_GPUS '$1' is not a positive integer" >&2; usage; }
num_gpus=$1
shift

print_topology --num-nodes 1 --gpus-per-node "$num_gpus" -- "$@"
run_forwarding "${DEEPSPEED_CMD[@]}" --num_gpus "$num_gpus" --master_port "${DS_PARROTS_MASTER_PORT:-$MASTER_PORT_DEFAULT}" \
    "$TRAIN_PY" "$@"
