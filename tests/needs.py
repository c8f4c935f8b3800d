"""Skip marks for optional packages that do not import them: every xdist worker collects every test
file, and importing AgentDojo (5 s), scikit-learn (2 s) or llama-cpp-python's server at collection
would cost each worker that time whether or not it runs those tests."""

from __future__ import annotations

import importlib.util

import pytest


def installed(*modules: str) -> bool:
    """Whether each top-level package is importable, found without importing it."""
    return all(importlib.util.find_spec(name) is not None for name in modules)


def needs(*modules: str, reason: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not installed(*modules), reason=reason)
