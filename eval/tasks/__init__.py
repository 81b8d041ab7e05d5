"""lm-evaluation-harness task YAMLs for the paper's four benchmarks that lm-eval does not ship (HotpotQA
closed-book, ComplexWebQuestions, GSM-Hard, SVAMP), and the functions they and the MATH subject tasks name."""
