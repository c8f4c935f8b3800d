"""llama-zoo: a registry of every Meta Llama model, and the backends, suites, store and reports it drives."""

__version__ = "0.1.0"
