"""Meta's published per-sample evals (``meta-llama/<Model>-evals``) as suites ``meta-evals:BENCHMARK``."""
