# shellcheck shell=bash disable=SC2034  # (its variables are used by the scripts that source it)
# Shared by the launch scripts (sourced, not run): where the repository is, which python / deepspeed
# to call, the topology check every launch prints first, and the dry run.
#
# Environment (all optional):
#   DS_PARROTS_PYTHON       python that has ds_parrots importable (default: python)
#   DS_PARROTS_DEEPSPEED    the DeepSpeed launcher command (default: deepspeed; e.g. "python -m deepspeed.launcher.runner")
#   DS_PARROTS_MASTER_PORT  rendezvous port on the master node (default: 29500)
#   DS_PARROTS_DRY_RUN=1    print the commands instead of running them (the topology check still runs)

# The repository: DS_PARROTS_REPO, else the folder above this file (SLURM runs a copy of the batch
# script from its spool folder, so slurm.sbatch sets DS_PARROTS_REPO from the submit directory).
DS_PARROTS_REPO=${DS_PARROTS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TRAIN_PY="$DS_PARROTS_REPO/ds_parrots/train.py"
MASTER_PORT_DEFAULT=29500
read -r -a PYTHON_CMD <<< "${DS_PARROTS_PYTHON:-python}"
read -r -a DEEPSPEED_CMD <<< "${DS_PARROTS_DEEPSPEED:-deepspeed}"

# Print the resolved world / expert-parallel / data-parallel sizes and refuse (exit 2, one line naming
# the flag) a combination that cannot run, before any node starts. Arguments: topology flags, then
# `--` and the train.py arguments. The repository goes on PYTHONPATH so a checkout that was never
# pip-installed works too.
print_topology() {
    PYTHONPATH="$DS_PARROTS_REPO${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON_CMD[@]}" -m ds_parrots.cli topology "$@"
}

# Print a command for DS_PARROTS_DRY_RUN=1 (shell-quoted, so it can be pasted); returns 1 otherwise.
dry_run() {
    [[ "${DS_PARROTS_DRY_RUN:-0}" == 1 ]] || return 1
    printf 'dry run:'
    printf ' %q' "$@"
    printf '\n'
}

# Run a command (or print it in a dry run).
run() {
    dry_run "$@" || "$@"
}

# DeepSpeed's launcher exports the KEY=VALUE lines of ~/.deepspeed_env and then ./.deepspeed_env (name
# from DS_ENV_FILE) to every node, but only when it starts the nodes itself over ssh. The --no_ssh
# forms start each node separately, so they export the same files here, in the same order.
export_deepspeed_env() {
    local dir file line
    for dir in "$HOME" .; do
        file="$dir/${DS_ENV_FILE:-.deepspeed_env}"
        [[ -f "$file" ]] || continue
        while IFS= read -r line || [[ -n "$line" ]]; do
            [[ -n "$line" ]] && export "${line?}"
        done < "$file"
    done
}

# The processes below $1 (children, grandchildren, ...), one pid a line.
descendants() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# Run the launcher as a child and forward TERM, INT, USR1 and USR2 to every rank under it (the train.py
# processes), then wait for it and return its exit code. The ranks take SIGTERM / SIGUSR1 as "save a checkpoint
# after this step and exit 75" (--train.preempt-signals). Why not `exec` the launcher: DeepSpeed's runner does
# not forward signals (it dies and leaves launch.py and the ranks running, orphaned), and launch.py, which does,
# SIGKILLs the ranks 30 s later, which can cut a checkpoint save short. A dry run only prints the command.
# FORWARDED_SIGNAL names the last signal forwarded (empty if none). With FORWARD_TO_LAUNCHER=1 the signal goes
# to the launcher itself instead (srun, which hands it on to its tasks on every node).
run_forwarding() {
    dry_run "$@" && return 0
    FORWARDED_SIGNAL=
    "$@" &
    FORWARD_TO=$!
    local sig
    for sig in TERM INT USR1 USR2; do
        # shellcheck disable=SC2064  # expand $sig now: one trap per signal
        trap "forward_signal $sig" "$sig"
    done
    local rc=0
    while :; do
        rc=0
        wait "$FORWARD_TO" || rc=$?
        # wait returns > 128 when a trapped signal interrupts it while the launcher still runs: wait again.
        if (( rc > 128 )) && kill -0 "$FORWARD_TO" 2>/dev/null; then continue; fi
        break
    done
    trap - TERM INT USR1 USR2
    if [[ -n "${FORWARD_REPEATER:-}" ]]; then
        kill "$FORWARD_REPEATER" 2>/dev/null
        FORWARD_REPEATER=
    fi
    return "$rc"
}

forward_signal() {
    FORWARDED_SIGNAL=$1
    if [[ "${FORWARD_TO_LAUNCHER:-0}" == 1 ]]; then
        echo "launch: SIG$1 received; forwarding it to $FORWARD_TO (${FORWARD_NAME:-the launcher})" >&2
        kill -s "$1" "$FORWARD_TO" 2>/dev/null
        # A rank still starting up has not installed its handler yet and misses the signal: say it again every
        # FORWARD_REPEAT_S seconds while the launcher runs (a rank that already has it only notes it again).
        if [[ -n "${FORWARD_REPEAT_S:-}" && -z "${FORWARD_REPEATER:-}" ]]; then
            (
                trap - TERM INT USR1 USR2
                while sleep "$FORWARD_REPEAT_S" && kill -s "$1" "$FORWARD_TO" 2>/dev/null; do :; done
            ) &
            FORWARD_REPEATER=$!
        fi
        return 0
    fi
    local ranks
    local pid cmdline
    ranks=$(for pid in $(descendants "$FORWARD_TO"); do
        # A rank runs train.py itself; DeepSpeed's runner and launch.py name it only as an argument. A process
        # may be gone by now: no error, and (under set -e) no failed test as the loop's status.
        cmdline=$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline") || continue
        if [[ "$cmdline" == *ds_parrots/train.py* && "$cmdline" != *deepspeed.launcher* ]]; then echo "$pid"; fi
    done)
    echo "launch: SIG$1 received; forwarding it to the ranks (${ranks//$'\n'/ })" >&2
    # shellcheck disable=SC2086  # one pid per word
    [[ -n "$ranks" ]] && kill -s "$1" $ranks 2>/dev/null
    return 0
}
