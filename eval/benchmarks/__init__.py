"""The paper's benchmark suites (world knowledge, commonsense, math) read from local files in their public schema.

registry: the benchmarks (category, splits, few-shot default, limits); rows / readers: files and the public
schemas -> examples; prompts / exemplars: few-shot prompts; normalize / math_answer: QA and math answer
checking; scoring: batched scoring against a LanguageModel; runner: run_benchmarks, data-parallel over ranks.
"""
