"""Evaluation suites: what is asked and how it is scored."""
