#!/usr/bin/env bash
# Train on the nodes of a DeepSpeed hostfile: launch/multi_node.sh <hostfile> <subcommand> [train flags...]
#
# Default (run once, on the first host): DeepSpeed's launcher reaches every host over passwordless ssh
# (pdsh) and exports the variables of .deepspeed_env to them (see launch/README.md).
# Without ssh: run this on every node with DS_PARROTS_NODE_RANK=<0..N-1> (the node's line in the
# hostfile); each node then starts only its own ranks (`deepspeed --no_ssh --node_rank R`).
#
# Environment: DS_PARROTS_NODE_RANK, DS_PARROTS_MASTER_ADDR (default: the first host of the hostfile),
# DS_PARROTS_MASTER_PORT (29500), DS_PARROTS_PYTHON, DS_PARROTS_DEEPSPEED, DS_PARROTS_DRY_RUN.
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    echo "usage: $0 <hostfile> <phonebook|shortest-path|two-hop|pretrain> [train flags...]" >&2
    echo "  hostfile: one 'hostname slots=N' line per node (see launch/hostfile.example)" >&2
    echo "  without passwordless ssh, run it on every node with DS_PARROTS_NODE_RANK=<its line, from 0>" >&2
    exit 2
}
[[ $# -ge 2 ]] || usage
hostfile=$1
shift

# Checks the hostfile (file and line of any bad entry) and the train flags against its world size.
print_topology --hostfile "$hostfile" -- "$@"

# The first host listed (the hostfile is valid by now): node rank 0, where the rendezvous runs.
first_host=$(awk '$1 !~ /^#/ && NF { print $1; exit }' "$hostfile")
launcher=("${DEEPSPEED_CMD[@]}" --hostfile "$hostfile" --master_addr "${DS_PARROTS_MASTER_ADDR:-$first_host}"
          --master_port "${DS_PARROTS_MASTER_PORT:-$MASTER_PORT_DEFAULT}")
if [[ -n "${DS_PARROTS_NODE_RANK:-}" ]]; then
    [[ "$DS_PARROTS_NODE_RANK" =~ ^[0-9]+$ ]] || {
        echo "error: DS_PARROTS_NODE_RANK='$DS_PARROTS_NODE_RANK' is not a node index; give this node's line in $hostfile, counting from 0" >&2
        exit 2
    }
    num_hosts=$(awk '$1 !~ /^#/ && NF { n++ } END { print n }' "$hostfile")
    (( DS_PARROTS_NODE_RANK < num_hosts )) || {
        echo "error: DS_PARROTS_NODE_RANK=$DS_PARROTS_NODE_RANK but $hostfile lists $num_hosts hosts; give 0 to $((num_hosts - 1))" >&2
        exit 2
    }
    launcher+=(--no_ssh --node_rank "$DS_PARROTS_NODE_RANK")
    export_deepspeed_env
fi
run_forwarding "${launcher[@]}" "$TRAIN_PY" "$@"
