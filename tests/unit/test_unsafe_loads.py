"""No code path unpickles a user file with code execution enabled: a scan of every source file for loads that can
run code from a file (the bad-input catalogue, tests/integration/bad_inputs/, shows each such input refused)."""

import ast

from helpers import REPO

_UNSAFE_CALLS = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "cPickle.load",
    "cPickle.loads",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "marshal.load",
    "marshal.loads",
    "shelve.open",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
    "yaml.load_all",
    "torch.serialization.add_safe_globals",
}
_UNSAFE_MODULES = {"pickle", "cPickle", "dill", "joblib", "marshal", "shelve"}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def unsafe_loads(source: str, name: str = "<src>") -> list[str]:
    """Calls that can run code from a file: torch.load without weights_only=True, np.load with
    allow_pickle=True, pickle / yaml.load / ... and imports from the pickling modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _UNSAFE_MODULES:
            found.append(f"{name}:{node.lineno} from {node.module} import")
        if not isinstance(node, ast.Call):
            continue
        func = _dotted(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        const = lambda key: isinstance(kw.get(key), ast.Constant) and kw[key].value  # noqa: E731, B023
        if func in _UNSAFE_CALLS or (func.endswith(".load") and func.split(".")[0] in _UNSAFE_MODULES):
            found.append(f"{name}:{node.lineno} {func}")
        elif func == "torch.load" and const("weights_only") is not True:
            found.append(f"{name}:{node.lineno} torch.load without weights_only=True")
        elif (
            func in ("np.load", "numpy.load") and const("allow_pickle") is not False and "allow_pickle" in kw
        ):
            found.append(f"{name}:{node.lineno} {func}(allow_pickle=...)")
    return found


def test_the_unsafe_load_check_catches_each_form():
    bad = (
        "import torch, pickle, numpy as np, yaml\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
        "pickle.load(f)\nnp.load(p, allow_pickle=True)\nyaml.load(s)\nfrom pickle import loads\n"
    )
    assert len(unsafe_loads(bad)) == 6
    assert (
        unsafe_loads(
            "torch.load(p, map_location='cpu', weights_only=True)\nnp.load(p, mmap_mode='r')\n"
            "yaml.safe_load(s)\n"
        )
        == []
    )


def test_no_source_file_loads_untrusted_data_with_code_execution():
    found = []
    for folder in ("ds_parrots", "eval", "launch", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            found += unsafe_loads(path.read_text(), str(path.relative_to(REPO)))
        for path in sorted((REPO / folder).rglob("*.sh")) + sorted((REPO / folder).rglob("*.sbatch")):
            text = path.read_text()
            found += [f"{path.relative_to(REPO)}: {w}" for w in ("torch.load", "pickle") if w in text]
    assert found == []
