"""Third-party suites through Python entry points: a toy distribution is built and pip-installed
into this environment, run end to end by ``llama-zoo eval``, ranked by its declared headline in
``llama-zoo report`` and compared with its declared paired test; then uninstalled."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.zoo import zoo_process

TOY = Path(__file__).parent / "plugin_toy"


@pytest.fixture(scope="module")
def toy_installed(tmp_path_factory):
    source = tmp_path_factory.mktemp("toy") / "plugin_toy"
    shutil.copytree(TOY, source)  # build outside the tree: no build/ or egg-info left in the checkout
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    installed = subprocess.run([*pip, "install", "--no-deps", *isolation, str(source)], capture_output=True, text=True,
                               timeout=600)
    assert installed.returncode == 0, installed.stderr
    yield
    subprocess.run([*pip, "uninstall", "-y", "llama-zoo-toy"], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.xdist_group("pip-install")
def test_a_plugin_suite_runs_reports_and_compares(toy_installed, tmp_path):
    # every command in a fresh interpreter, as a user's: `eval` builds its flags from the suites it
    # finds when it is imported, so a test process that imported it before the install has no --toy-threshold
    zoo = zoo_process
    db = tmp_path / "r.db"
    shown = zoo("eval", "--help", db=db)
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
