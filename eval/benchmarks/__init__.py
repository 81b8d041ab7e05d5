"""The paper's benchmark suites (world knowledge, commonsense, math) read from local files in their public schema."""
