"""Third-party backends through Python entry points: a toy backend distribution (a byte bigram
model, ``tests/plugin_toy_backend/``) is built and pip-installed into this environment, runs
``llama-zoo eval --backend toy`` end to end, its runs are stored, reported and compared, and an
option of another backend is refused for it; then it is uninstalled."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

TOY = Path(__file__).parent / "plugin_toy_backend"
DOCUMENTS = [
    "The llama is a domesticated South American camelid.",
    "Llamas are social animals and live with others as a herd.",
    "def add(a, b):\n    return a + b\n",
    "Perplexity is the exponential of the mean negative log-likelihood.",
    "Their wool is soft and contains only a small amount of lanolin.",
    "xq zv jk wq ffx ppz qqj vvk zzx jjq",
    "When using a pack, they can carry about 25 to 30 percent of their body weight.",
    "A language model assigns a probability to every sequence of tokens.",
    "The name llama was adopted by European settlers from native Peruvians.",
    "Rome was not built in a day.",
    "import numpy as np\nprint(np.zeros(3))\n",
    "Llamas can learn simple tasks after a few repetitions.",
]


@pytest.fixture(scope="module")
def toy_backend_installed(tmp_path_factory):
    source = tmp_path_factory.mktemp("toy-backend") / "plugin_toy_backend"
    shutil.copytree(TOY, source)  # build outside the tree: no build/ or egg-info left in the checkout
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    installed = subprocess.run([*pip, "install", "--no-deps", *isolation, str(source)], capture_output=True, text=True,
                               timeout=600)
    assert installed.returncode == 0, installed.stderr
    yield
    subprocess.run([*pip, "uninstall", "-y", "llama-zoo-toy-backend"], capture_output=True, text=True, timeout=300)


def zoo(*args: str, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llama_zoo", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "LLAMA_ZOO_DB": str(db)})


def bigram_logprob_sum(text: str, smoothing: float) -> tuple[float, int]:
    """The toy's model written out again from its training text: rolling perplexity's one window
    (BOS as context, then BOS and the text's bytes as targets, lm-eval's way) scored by add-k bigrams."""
    spec = importlib.util.spec_from_file_location("toy_source", TOY / "llama_zoo_toy_backend" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trained = [256, *module.TRAINING_TEXT.encode(), 257]
    pairs, firsts = Counter(zip(trained, trained[1:])), Counter(trained[:-1])
    seq = [256, 256, *text.encode()]
    total = sum(math.log((pairs[a, b] + smoothing) / (firsts[a] + smoothing * 258)) for a, b in zip(seq, seq[1:]))
    return total, len(seq) - 1


@pytest.mark.slow
def test_a_plugin_backend_runs_is_stored_reported_and_compared(toy_backend_installed, tmp_path):
    db = tmp_path / "r.db"
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCUMENTS))
    shown = zoo("eval", "--help", db=db)
    assert "--toy-smoothing" in shown.stdout and "toy options" in shown.stdout  # its option, in its own panel

    common = ("eval", "--model", "llama-3.2-1b", "--shadow", "--backend", "toy", "--dataset", str(data),
              "--format", "json")
    runs = {}
    for smoothing in ("0.5", "0.01"):
        done = zoo(*common, "--toy-smoothing", smoothing, db=db)
        assert done.returncode == 0, done.stderr
        runs[smoothing] = json.loads(done.stdout)
    assert runs["0.5"]["run_id"] != runs["0.01"]["run_id"]  # the option is part of the run's identity
    again = json.loads(zoo(*common, "--toy-smoothing", "0.01", db=db).stdout)
    assert again["cached"] and again["run_id"] == runs["0.01"]["run_id"]

    for smoothing, run in runs.items():  # the numbers are the bigram model's, through suite, loop and store
        sums = [bigram_logprob_sum(t, float(smoothing)) for t in DOCUMENTS]
        want = math.exp(-sum(s for s, _ in sums) / sum(n for _, n in sums))
        assert run["metrics"]["token_perplexity"]["value"] == pytest.approx(want, rel=1e-9)
    stored = json.loads(zoo("runs", "show", runs["0.01"]["run_id"], "--format", "json", db=db).stdout)
    assert stored["backend"] == "toy" and stored["samples_stored"] == len(DOCUMENTS)
    assert stored["options"]["backend_options"] == {"toy_smoothing": 0.01}
    assert stored["runner"]["smoothing"] == 0.01 and stored["runner"]["backend"] == "toy"

    report = tmp_path / "report.html"
    assert zoo("report", "--out", str(report), db=db).returncode == 0
    html = report.read_text()
    section = html[html.index('id="suite-perplexity"'):]
    assert "llama-3.2-1b" in section and "toy_smoothing" in section

    compared = zoo("compare", runs["0.5"]["run_id"], runs["0.01"]["run_id"], "--format", "json", db=db)
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout)
    row = next(r for r in result["rows"] if r["metric"] == "token_perplexity")
    a, b = (runs[s]["metrics"]["token_perplexity"]["value"] for s in ("0.5", "0.01"))
    assert result["shared_samples"] == len(DOCUMENTS) and row["difference"] == pytest.approx(b - a)
    assert row["p_value"] is not None and row["ci_low"] <= row["difference"] <= row["ci_high"]


@pytest.mark.slow
def test_another_backends_option_is_refused_in_one_line(toy_backend_installed, tmp_path):
    db = tmp_path / "r.db"
    base = ("eval", "--model", "llama-3.2-1b", "--shadow", "--suite", "perplexity", "--limit", "1")
    cases = [
        (("--backend", "toy", "--base-url", "http://127.0.0.1:9/v1"), "--base-url is an option of --backend openai, not of toy"),
        (("--backend", "toy", "--threads", "2"), "--threads is an option of --backend llama.cpp, not of toy"),
        (("--backend", "hf", "--toy-smoothing", "0.1"), "--toy-smoothing is an option of --backend toy, not of hf"),
        (("--backend", "toy", "--toy-smoothing", "0"), "--toy-smoothing must be at least 0.001"),
    ]
    for flags, message in cases:
        refused = zoo(*base, *flags, db=db)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), refused.stderr
        assert message in lines[0]
