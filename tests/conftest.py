"""Shared fixtures. ``../shared`` (tokenizers, datasets) sits beside the project root; tests that
need it skip with a reason where it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the shared test data (real tokenizers, datasets) is not here")
    return SHARED


@pytest.fixture(scope="session")
def catalog():
    from llama_zoo.registry.catalog import load_catalog

    return load_catalog()
