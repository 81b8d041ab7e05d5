"""Bad-input cases of the command line: flags, hostfiles (`ds-parrots topology`), sweeps and reproductions."""

from error_cases.catalogue import (
    PHONEBOOK,
    PHONEBOOK_MOE,
    PRETRAIN,
    TINY,
    C,
    bench_eval,
    make_read_only,
    undo_read_only,
)


def _number(id, argv, expect, flags=PHONEBOOK):
    """A numeric flag out of its range: refused in one line naming the flag, before torch or DeepSpeed see it."""
    return C(id, "flags", [*flags, *argv], expect)


def _read_only_checkpoints(tmp, assets):
    (tmp / "runs" / "r").mkdir(parents=True)
    make_read_only(tmp / "runs" / "r" / "checkpoints")


CASES = [
    # --- command-line flags --------------------------------------------------------------------------
    C(
        "flag-unknown-preset",
        "flags",
        ["train", "phonebook", "--preset", "tiny-moo"],
        ["unknown preset 'tiny-moo'", "ds-parrots presets"],
    ),
    C("flag-negative-steps", "flags", [*PHONEBOOK, "--train.steps", "-3"], ["--train.steps=-3", ">= 1"]),
    C(
        "flag-steps-not-int",
        "flags",
        [*PHONEBOOK, "--train.steps", "ten"],
        ["--train.steps", "ten"],
        parser=True,
    ),
    C(
        "flag-bad-precision",
        "flags",
        [*PHONEBOOK, "--train.precision", "fp64"],
        ["--train.precision", "fp64", "bf16"],
        parser=True,
    ),
    C(
        "flag-bad-zero-stage",
        "flags",
        [*PHONEBOOK, "--train.zero-stage", "4"],
        ["--train.zero-stage"],
        parser=True,
    ),
    C("flag-unknown-flag", "flags", [*PHONEBOOK, "--train.stepz", "3"], ["--train.stepz"], parser=True),
    C(
        "flag-global-batch-not-divisible",
        "flags",
        [*PHONEBOOK, "--train.global-batch", "10", "--train.micro-batch", "4"],
        ["--train.global-batch=10", "is not a multiple"],
    ),
    C(
        "flag-ep-size-not-dividing-experts",
        "flags",
        [*PHONEBOOK, "--model.num-experts", "6", "--moe.ep-size", "4"],
        ["--model.num-experts=6", "--moe.ep-size=4"],
    ),
    C("flag-ep-size-over-world", "flags", [*PHONEBOOK_MOE, "--moe.ep-size", "2"], ["--moe.ep-size=2"]),
    C(
        "flag-native-zero3",
        "flags",
        [*PHONEBOOK_MOE, "--moe.backend", "native", "--train.zero-stage", "3"],
        ["native MoE backend does not run under ZeRO-3", "--train.zero-stage"],
    ),
    C(
        "flag-top-k-over-experts",
        "flags",
        [*PHONEBOOK, "--model.num-experts", "4", "--model.top-k", "5"],
        ["--model.top-k=5", "--model.num-experts=4", "lower --model.top-k"],
    ),
    C(
        "flag-heads-not-dividing-width",
        "flags",
        [*PHONEBOOK, "--model.d-model", "100", "--model.n-heads", "3"],
        ["--model.d-model=100", "--model.n-heads=3"],
    ),
    C("flag-zero-lr", "flags", [*PHONEBOOK, "--optim.lr", "0"], ["--optim.lr=0.0", "> 0"]),
    C(
        "flag-warmup-over-one",
        "flags",
        [*PHONEBOOK, "--optim.warmup-frac", "1.5"],
        ["--optim.warmup-frac=1.5", "[0, 1]"],
    ),
    C(
        "flag-negative-capacity-factor",
        "flags",
        [*PHONEBOOK, "--moe.capacity-factor", "-1"],
        ["--moe.capacity-factor=-1.0", "omitted"],
    ),
    # Every float flag is checked for a finite value in its range (NaN passes `lr <= 0`; torch's AdamW raised
    # a traceback on nan / beta 2 only after launch; an infinite lr and a negative decay trained).
    _number("flag-nan-lr", ["--optim.lr", "nan"], ["--optim.lr=nan", "finite number > 0"]),
    _number("flag-infinite-lr", ["--optim.lr", "inf"], ["--optim.lr=inf", "finite number > 0"]),
    _number("flag-beta1-over-one", ["--optim.beta1", "2"], ["--optim.beta1=2.0", "in [0, 1)"]),
    _number("flag-beta2-one", ["--optim.beta2", "1"], ["--optim.beta2=1.0", "in [0, 1)"]),
    _number("flag-zero-eps", ["--optim.eps", "0"], ["--optim.eps=0.0", "> 0"]),
    _number(
        "flag-negative-weight-decay", ["--optim.weight-decay", "-5"], ["--optim.weight-decay=-5.0", ">= 0"]
    ),
    _number("flag-nan-grad-clip", ["--optim.grad-clip", "nan"], ["--optim.grad-clip=nan", ">= 0"]),
    _number(
        "flag-final-lr-over-one", ["--optim.final-lr-frac", "2"], ["--optim.final-lr-frac=2.0", "[0, 1]"]
    ),
    _number(
        "flag-nan-capacity-factor",
        ["--moe.backend", "native", "--train.zero-stage", "2", "--moe.capacity-factor", "nan"],
        ["--moe.capacity-factor=nan", "finite number > 0"],
        PHONEBOOK_MOE,
    ),
    _number("flag-negative-aux-loss", ["--moe.aux-loss-coef", "-1"], ["--moe.aux-loss-coef=-1.0", ">= 0"]),
    _number("flag-nan-norm-eps", ["--model.norm-eps", "nan"], ["--model.norm-eps=nan", "> 0"]),
    _number("flag-infinite-rope-theta", ["--model.rope-theta", "inf"], ["--model.rope-theta=inf", "> 0"]),
    _number(
        "flag-infinite-collective-timeout",
        ["--train.collective-timeout", "inf"],
        ["--train.collective-timeout=inf", "finite number in (0, 1e+09]"],
    ),
    _number("flag-nan-peak-tflops", ["--train.peak-tflops", "nan"], ["--train.peak-tflops=nan", ">= 0"]),
    _number("flag-negative-seed", ["--train.seed", "-1"], ["--train.seed=-1", "[0, 2**64 - 1]"]),
    _number("flag-negative-num-workers", ["--train.num-workers", "-1"], ["--train.num-workers=-1", ">= 0"]),
    _number("flag-zero-max-eval", ["--train.max-eval", "0"], ["--train.max-eval=0", ">= 1"]),
    C(
        "flag-eval-capacity-factor-autoep",
        "flags",
        [*PHONEBOOK_MOE, "--moe.eval-capacity-factor", "1.5"],
        ["--moe.eval-capacity-factor", "native backend only"],
    ),
    # --- run names: one directory under --train.out-dir ----------------------------------------------
    C(
        "flag-run-name-escapes-out-dir",
        "flags",
        [*PHONEBOOK, "--train.run-name", "../../escaped"],
        ["--train.run-name='../../escaped'", "without '/'"],
    ),
    C(
        "flag-run-name-too-long",
        "flags",
        [*PHONEBOOK, "--train.run-name", "r" * 300],
        ["--train.run-name=", "300 bytes", "at most 255"],
    ),
    C("flag-run-name-dot-dot", "flags", [*PHONEBOOK, "--train.run-name", ".."], ["--train.run-name='..'"]),
    C(
        "flag-out-dir-component-too-long",
        "flags",
        ["train", "phonebook", *TINY, "--train.out-dir", "{tmp}/" + "o" * 300],
        ["--train.out-dir", "300 bytes", "at most 255"],
    ),
    # --- the run directory: refused before launch where it cannot be written --------------------------
    C(
        "run-checkpoints-read-only",
        "checkpoint",
        [*PHONEBOOK, "--train.run-name", "r"],
        ["{tmp}/runs/r/checkpoints is not writable", "choose another --train.out-dir"],
        _read_only_checkpoints,
        cleanup=lambda t: undo_read_only(t / "runs" / "r" / "checkpoints"),
    ),
    C(
        "run-checkpoints-is-a-file",
        "checkpoint",
        [*PHONEBOOK, "--train.run-name", "r"],
        ["{tmp}/runs/r/checkpoints is a file"],
        lambda t, a: (
            (t / "runs" / "r").mkdir(parents=True),
            (t / "runs" / "r" / "checkpoints").write_text(""),
        ),
    ),
    C("flag-zero-book-size", "flags", [*PHONEBOOK, "--task.book-size", "0"], ["book_size=0", ">= 1"]),
    C(
        "flag-missing-ds-config",
        "flags",
        [*PHONEBOOK, "--train.ds-config", "{tmp}/nope.json"],
        ["--train.ds-config {tmp}/nope.json", "drop the flag"],
    ),
    C(
        "flag-ds-config-not-json",
        "flags",
        [*PHONEBOOK, "--train.ds-config", "{tmp}/ds.json"],
        ["--train.ds-config {tmp}/ds.json", "not valid JSON"],
        lambda t, a: (t / "ds.json").write_text("{zero: 3"),
    ),
    C(
        "flag-pretrain-without-mixture",
        "flags",
        ["train", "pretrain", *TINY, "--train.out-dir", "{tmp}/runs"],
        ["--data.mixture"],
    ),
    C("flag-zero-seq-len", "flags", [*PRETRAIN, "--data.seq-len", "0"], ["--data.seq-len=0", ">= 1"]),
    C(
        "flag-presets-bad-vocab",
        "flags",
        ["presets", "--vocab-size", "big"],
        ["'--vocab-size big'", "--vocab-size N, a whole number"],
    ),
    C("flag-unknown-command", "flags", ["trian"], ["unknown command 'trian'", "train, presets"]),
    C(
        "flag-eval-bad-few-shot",
        "flags",
        ["{tmp}/m.safetensors", "--tasks", "piqa", "--bench-dir", "{tmp}", "--few-shot", "piqa=many"],
        ["--few-shot", "triviaqa=5"],
        lambda t, a: bench_eval(t, a),
        command="ds-parrots-eval",
    ),
    # --- hostfiles (ds-parrots topology, launch/*.sh) ------------------------------------------------
    C(
        "hostfile-missing",
        "hostfile",
        ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
        ["hostfile {tmp}/hosts", "no such file", "slots=N"],
    ),
    C(
        "hostfile-bad-syntax",
        "hostfile",
        ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
        ["hostfile {tmp}/hosts line 2", "'hostname slots=N'"],
        lambda t, a: (t / "hosts").write_text("node1 slots=8\nnode2 gpus=8\n"),
    ),
    C(
        "hostfile-zero-slots",
        "hostfile",
        ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
        ["hostfile {tmp}/hosts line 1", "slots=0", "slots >= 1"],
        lambda t, a: (t / "hosts").write_text("node1 slots=0\n"),
    ),
    C(
        "hostfile-duplicate-host",
        "hostfile",
        ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
        ["hostfile {tmp}/hosts line 2", "already listed", "list each node once"],
        lambda t, a: (t / "hosts").write_text("node1 slots=8\nnode1 slots=8\n"),
    ),
    C(
        "hostfile-duplicate-host-other-case",
        "hostfile",
        ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
        ["hostfile {tmp}/hosts line 2", "'NODE1.'", "line 1", "case-insensitively"],
        lambda t, a: (t / "hosts").write_text("node1 slots=2\nNODE1. slots=4\n"),
    ),
    C(
        "hostfile-repeated-slots",
        "hostfile",
        ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
        ["hostfile {tmp}/hosts line 1", "slots= more than once"],
        lambda t, a: (t / "hosts").write_text("node1 slots=2 slots=4\n"),
    ),
    C(
        "hostfile-no-hosts",
        "hostfile",
        ["topology", "--hostfile", "{tmp}/hosts", "--", "phonebook", *TINY],
        ["hostfile {tmp}/hosts", "lists no hosts"],
        lambda t, a: (t / "hosts").write_text("# none yet\n"),
    ),
    C(
        "hostfile-topology-refused",
        "hostfile",
        [
            "topology",
            "--hostfile",
            "{tmp}/hosts",
            "--",
            "phonebook",
            "--preset",
            "tiny-moe",
            "--moe.ep-size",
            "3",
        ],
        ["--moe.ep-size=3"],
        lambda t, a: (t / "hosts").write_text("node1 slots=2\nnode2 slots=2\n"),
    ),
    # --- sweeps and reproductions --------------------------------------------------------------------
    C(
        "sweep-unknown-grid",
        "sweep",
        ["sweep", "synthetic-phonebok"],
        ["unknown grid 'synthetic-phonebok'", "choose one of"],
    ),
    C(
        "sweep-bad-filter-key",
        "sweep",
        ["sweep", "smoke", "--filter", "colour=red"],
        ["--filter colour=red", "use one of"],
    ),
    C(
        "sweep-filter-selects-nothing",
        "sweep",
        ["sweep", "synthetic-phonebook", "--filter", "width=3"],
        ["--filter width=3", "selects none"],
    ),
    C(
        "sweep-extra-sets-grid-flag",
        "sweep",
        ["sweep", "smoke", "--extra", "--preset tiny-dense"],
        ["--extra sets --preset", "--filter"],
    ),
    C(
        "sweep-extra-rejected-by-train",
        "sweep",
        ["sweep", "smoke", "--extra", "--train.steps -1"],
        ["--train.steps=-1"],
    ),
    C(
        "reproduce-unknown-scale",
        "sweep",
        ["reproduce", "phonebook", "--scale", "huge"],
        ["--scale", "huge"],
        parser=True,
    ),
    C(
        "reproduce-zero-epochs",
        "sweep",
        ["reproduce", "phonebook", "--scale", "smoke", "--epochs", "0"],
        ["--epochs=0", "> 0"],
    ),
    C(
        "reproduce-nan-epochs",
        "sweep",
        ["reproduce", "phonebook", "--scale", "smoke", "--epochs", "nan"],
        ["--epochs=nan", "finite number > 0"],
    ),
    C(
        "reproduce-pretrain-paper-flag",
        "sweep",
        ["reproduce", "pretrain", "--scale", "tiny", "--bench-dir", "{tmp}/bench"],
        ["--bench-dir is for --scale paper", "generates its corpus"],
    ),
    C(
        "reproduce-pretrain-no-bench-dir",
        "sweep",
        ["reproduce", "pretrain", "--scale", "paper"],
        ["pass --bench-dir", "--dry-run / --emit slurm"],
    ),
]
