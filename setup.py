from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="ds_parrots",
    version="0.1.0",
    description="DeepSpeed training of dense and MoE transformers to reproduce 'Mixture of Parrots' (ICLR 2025)",
    long_description=Path(__file__).with_name("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=(
        find_packages(include=["ds_parrots", "ds_parrots.*"])
        + ["ds_parrots.ds_configs"]
        + ["ds_parrots_eval" + p[len("eval") :] for p in find_packages(include=["eval", "eval.*"])]
    ),
    # The DeepSpeed JSON templates live at the repo root (ds_configs/) and install inside the package;
    # the offline evaluation lives at the repo root (eval/) and installs as ds_parrots_eval.
    package_dir={"ds_parrots.ds_configs": "ds_configs", "ds_parrots_eval": "eval"},
    package_data={"ds_parrots.ds_configs": ["*.json", "*/*.json"], "ds_parrots_eval.tasks": ["*.yaml"]},
    install_requires=[
        # Install torch first on CPU-only machines (`pip install torch==2.13.0`): an unpinned torch
        # requirement otherwise pulls the CUDA build.
        "torch>=2.4",
        "deepspeed>=0.19.8",
        "numpy>=1.24",
        "tyro>=0.9",
        "tensorboard>=2.14",
        "tqdm>=4.60",
        "sentencepiece>=0.2",
        "datasets>=2.18",
        "safetensors>=0.4",
        # Checkpoint checksums (training/checkpoint_manifest.py): xxh3 hashes at ~4x zlib.crc32's rate.
        "xxhash>=2",
        # PNG figures with log axes (ds-parrots-eval plot, ds-parrots reproduce): nothing hand-written
        # would match matplotlib's axes, ticks and legends.
        "matplotlib>=3.7",
    ],
    # Benchmarks run on lm-evaluation-harness (ds-parrots-eval imports it only on the benchmark path): its
    # [hf] extra brings transformers, accelerate and tokenizers (our scoring uses the export's tokenizer.json;
    # `lm_eval --model hf` needs accelerate), [math] sympy / math_verify for Minerva MATH.
    # transformers also for the export parity tests.
    extras_require={
        "eval": ["lm-eval[hf,math]>=0.4.13,<0.5"],
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.2",
            "transformers>=4.46",
            "lm-eval[hf]>=0.4.13,<0.5",
            "ruff>=0.6",
        ],
    },
    entry_points={
        "console_scripts": [
            "ds-parrots=ds_parrots.cli:console",
            "ds-parrots-eval=ds_parrots_eval.cli:console",
        ]
    },
)
