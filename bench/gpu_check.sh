#!/usr/bin/env bash
# The GPU check in one call (under 8 minutes on one H100 / H200): install what is missing, then
# bench/gpu_check.py with a time limit. Arguments go to gpu_check.py (--help lists them); results go to stdout
# and, when $OUT is set (or --out DIR), to $OUT/gpu_check.json and $OUT/gpu_check.md.
#
#   bench/gpu_check.sh                            # the full check
#   bench/gpu_check.sh --quick                    # fewer steps
#   bench/gpu_check.sh --device cpu --tiny        # the whole pipeline on tiny models, on a CPU
#   bench/gpu_check.sh --prepare-wheels .whl      # on a machine with PyPI: wheels for a GPU machine without it
#
# A GPU machine without a package index gets DeepSpeed from wheels: GPU_CHECK_WHEELS=DIR (default .whl in the
# repository, if it is there), made by --prepare-wheels for Python $GPU_CHECK_PYTHON_VERSION (3.12).
# Exit codes: those of gpu_check.py (0 all ran, 1 something failed or was skipped, 2 bad arguments), 3 the
# environment (no torch, DeepSpeed missing and not installable), 124 stopped at GPU_CHECK_TIMEOUT_S (default:
# what is left of 470 s after the installs).
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS

die() {
    echo "gpu_check: $1" >&2
    exit "${2:-3}"
}

PY=${PYTHON:-$(command -v python3 || command -v python || true)}
[[ -n "$PY" ]] || die "no python3 on PATH (set PYTHON=...)"

if [[ "${1:-}" == "--prepare-wheels" ]]; then
    # DeepSpeed at the version this project pins and those of its requirements that a bare CUDA image with
    # torch lacks, at the versions this machine runs. DeepSpeed ships only a source archive: built here
    # (pure Python; its CUDA ops compile on the GPU machine when first used).
    dir=${2:?"usage: bench/gpu_check.sh --prepare-wheels DIR"}
    mkdir -p "$dir"
    pins=$("$PY" -c 'import importlib.metadata as m
print(" ".join(f"{p}=={m.version(p)}" for p in ("hjson", "pydantic", "pydantic_core", "annotated_types", "typing_inspection")))')
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_CHECK_PYTHON_VERSION:-3.12}" \
        --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dir" $pins
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$dir" deepspeed==0.19.8
    ls "$dir"
    exit 0
fi

"$PY" -c "import torch" 2>/dev/null || die "python ($PY) cannot import torch: install the CUDA build of torch first"
for a in "$@"; do
    if [[ "$a" == "-h" || "$a" == "--help" ]]; then exec "$PY" bench/gpu_check.py --help; fi
done
# Bad arguments fail in a second, before any install (one line, exit code 2).
"$PY" -c 'import sys; sys.path.insert(0, "bench"); import gpu_check; gpu_check.parse_args(sys.argv[1:])' "$@" \
    || exit $?

if ! "$PY" -c "import deepspeed" 2>/dev/null; then
    wheels=${GPU_CHECK_WHEELS:-.whl}
    log=$(mktemp /tmp/gpu_check_install.XXXXXX)
    if compgen -G "$wheels/*.whl" >/dev/null; then
        site=/tmp/gpu_check_site
        "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" "$wheels"/*.whl \
            >"$log" 2>&1 || die "installing the wheels in $wheels failed: see $log"
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    else
        timeout 180 "$PY" -m pip install -q --timeout 15 --retries 1 deepspeed==0.19.8 >"$log" 2>&1 \
            || die "DeepSpeed is missing and 'pip install deepspeed==0.19.8' failed (no package index here?): \
on a machine with one run 'bench/gpu_check.sh --prepare-wheels .whl' and bring .whl along (log: $log)"
    fi
    "$PY" -c "import deepspeed" >"$log" 2>&1 || die "DeepSpeed installed but does not import: see $log"
    echo "gpu_check: installed DeepSpeed in $((SECONDS - START)) s"
fi

export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
# Rows of very different sizes run one after another in one process: growable segments keep the freed
# memory of one from fragmenting the next.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
# The whole call within 8 minutes: what the installs took comes off the check's time. Nothing starts after
# gpu_check.py's --budget-s (360 s); the limit leaves the last measurement time to finish.
limit=${GPU_CHECK_TIMEOUT_S:-$((470 - (SECONDS - START)))}
rc=0
timeout --kill-after=15 "$limit" "$PY" bench/gpu_check.py "$@" || rc=$?
if ((rc == 124 || rc == 137)); then
    echo "gpu_check: stopped at ${limit} s (GPU_CHECK_TIMEOUT_S); what was measured is in \$OUT/gpu_check.*" >&2
    rc=124
fi
echo "gpu_check: done in $((SECONDS - START)) s, exit code $rc"
exit $rc
