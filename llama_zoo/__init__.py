"""llama-zoo: a registry of every Meta Llama model, and the runners, suites, store and reports it drives."""

__version__ = "0.1.0"
