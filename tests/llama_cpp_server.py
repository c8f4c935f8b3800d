"""llama-cpp-python's OpenAI-compatible server, started by the tests on a free local port."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

KEY = "test-key-not-secret"
SERVE = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_llama_cpp.py"  # the server, on plain CPU weights


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_cpp_server(gguf, *extra: str):
    """llama-cpp-python's server on a free local port with ``gguf`` (extra: its own flags), as
    benchmarks/serve_llama_cpp.py starts it (`python -m llama_cpp.server` on llama.cpp's plain CPU
    weights: AMX-repacked Q4_1 weights crash); yields its URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(SERVE), "--model", str(gguf), "--host", "127.0.0.1", "--port",
                                str(port), "--n_ctx", "2048", "--type_k", "0", "--type_v", "0", "--api_key", KEY, *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(120):  # bounded: at most a minute
            try:
                request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"})
                urllib.request.urlopen(request, timeout=2).read()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail("llama-cpp-python's server exited at start")
                time.sleep(0.5)
        else:
            pytest.fail("llama-cpp-python's server did not answer within a minute")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
