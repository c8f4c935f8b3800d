"""Third-party suites and backends through Python entry points: a toy distribution of each is built and
pip-installed into this environment, run end to end by ``llama-zoo eval``, reported and compared;
then uninstalled. The toy suite (``tests/plugin_toy/``) is ranked by its declared headline and compared
with its declared paired test; the toy backend (``tests/plugin_toy_backend/``, a byte bigram model)
answers perplexity, its runs are stored, reported and compared, and another backend's option is refused
for it. One file, so the two pip installs never run side by side under xdist."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.zoo import zoo_process

TOY = Path(__file__).parent / "plugin_toy"
TOY_BACKEND = Path(__file__).parent / "plugin_toy_backend"

# every command in a fresh interpreter, as a user's: `eval` builds its flags from the plug-ins it finds
# when it is imported, so a test process that imported it before the install has no --toy-threshold
zoo = zoo_process


def pip_installed(tmp_path_factory, source: Path, distribution: str):
    """A plug-in distribution built outside the tree (no build/ or egg-info left in the checkout),
    pip-installed into this environment for the module's tests, then uninstalled."""
    build = tmp_path_factory.mktemp(source.name) / source.name
    shutil.copytree(source, build)
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    installed = subprocess.run([*pip, "install", "--no-deps", *isolation, str(build)], capture_output=True, text=True,
                               timeout=600)
    assert installed.returncode == 0, installed.stderr
    yield
    subprocess.run([*pip, "uninstall", "-y", distribution], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def toy_installed(tmp_path_factory):
    yield from pip_installed(tmp_path_factory, TOY, "llama-zoo-toy")


@pytest.fixture(scope="module")
def toy_backend_installed(tmp_path_factory):
    yield from pip_installed(tmp_path_factory, TOY_BACKEND, "llama-zoo-toy-backend")


@pytest.mark.slow
@pytest.mark.xdist_group("pip-install")
def test_a_plugin_suite_runs_reports_and_compares(toy_installed, tmp_path):
    db = tmp_path / "r.db"
    shown = zoo("eval", "--suite", "toy", "--help", db=db)
    assert "--toy-threshold" in shown.stdout and "toy options" in shown.stdout  # its option, in its own panel

    runs = {}
    for model in ("llama-3.2-1b", "llama-2-7b"):
        # a shadow's per-token log-probability is about -ln(vocabulary): -11.8 with Llama 3's 128K, -10.4 with 32K
        done = zoo("eval", "--model", model, "--suite", "toy", "--shadow", "--toy-threshold", "-11.1", "--format", "json",
                   db=db)
        assert done.returncode == 0, done.stderr
        runs[model] = json.loads(done.stdout)
    accuracy = {m: r["metrics"]["accuracy"]["value"] for m, r in runs.items()}
    assert accuracy == {"llama-3.2-1b": 0.0, "llama-2-7b": 1.0}
    stored = json.loads(zoo("runs", "show", runs["llama-2-7b"]["run_id"], "--format", "json", db=db).stdout)
    assert stored["suite"] == "toy" and stored["options"]["toy_threshold"] == -11.1 and stored["samples_stored"] == 6

    report = tmp_path / "report.html"
    assert zoo("report", "--out", str(report), db=db).returncode == 0
    html = report.read_text()
    section = html[html.index('id="suite-toy"'):]
    section = section[:section.index("</table>")]
    order = [m for m in re.findall(r">(llama-[\w.-]+)<", section) if m in accuracy]
    assert order == ["llama-2-7b", "llama-3.2-1b"]  # sorted by the declared headline, higher first
    assert "setup" in section and "toy_threshold=-11.1" in section

    compared = zoo("compare", "llama-3.2-1b", "llama-2-7b", "--suite", "toy", "--format", "json", db=db)
    assert compared.returncode == 0, compared.stderr
    row = json.loads(compared.stdout)["rows"][0]
    assert row["metric"] == "accuracy" and row["difference"] == 1.0
    assert row["test"].startswith("McNemar exact (0 vs 6 discordant)") and row["p_value"] == pytest.approx(2 / 2**6)

    wrong = zoo("eval", "--model", "llama-2-7b", "--suite", "perplexity", "--shadow", "--toy-threshold", "-3", db=db)
    assert wrong.returncode == 2 and "--toy-threshold is an option of toy, not of perplexity" in wrong.stderr


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


def bigram_logprob_sum(text: str, smoothing: float) -> tuple[float, int]:
    """The toy's model written out again from its training text: rolling perplexity's one window
    (BOS as context, then BOS and the text's bytes as targets, lm-eval's way) scored by add-k bigrams."""
    spec = importlib.util.spec_from_file_location("toy_source", TOY_BACKEND / "llama_zoo_toy_backend" / "__init__.py")
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
    shown = zoo("eval", "--backend", "toy", "--help", db=db)
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
