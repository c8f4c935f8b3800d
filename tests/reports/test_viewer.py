"""``llama-zoo serve``: the real server on a free loopback port, over a store of runs from several
suites, driven by headless Chromium; its pages for bad input; and that it never writes."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.needs import needs
from tests.pg import free_port
from tests.reports.test_report import CHROMIUM, launch

# one xdist worker for the module: the browser tests share the store and the server, built once
pytestmark = [needs("starlette", "uvicorn", reason="llama-zoo serve needs the serve extra (starlette, uvicorn)"),
              pytest.mark.xdist_group("chromium")]

RIGHT = {"code-llama-7b": 3, "code-llama-13b": 6}  # of the first eight HumanEval tasks, the first N right


@pytest.fixture(scope="module")
def store(zoo, tmp_path_factory, humaneval_problems, shared):
    """Runs of four suites: two HumanEval runs scored from completions made elsewhere (known
    verdicts, so known differences), and shadow runs of perplexity, needle and vqa; plus a run
    left 'running' by a process long gone, which a writer would mark interrupted."""
    root = tmp_path_factory.mktemp("viewer")
    db = root / "r.db"
    tasks = list(humaneval_problems.tasks.items())[:8]
    runs = {}
    for model, right in RIGHT.items():
        samples = root / f"{model}.jsonl"
        samples.write_text("".join(json.dumps({"task_id": t, "completion": p["canonical_solution"] if i < right
                                               else "    return None\n"}) + "\n" for i, (t, p) in enumerate(tasks)))
        out = zoo("eval", "--model", model, "--suite", "humaneval", "--samples-file", str(samples), "--format", "json",
                  db=db)
        assert out.returncode == 0, out.stderr
        runs[model] = json.loads(out.stdout)["run_id"]
    for suite, model, extra in (("perplexity", "llama-3.2-1b", ("--limit", "2", "--context", "64")),
                                ("needle", "llama-3.2-1b-instruct", ("--tokenizer", str(shared / "tokenizers" / "llama3_1"),
                                                             "--lengths", "512", "--depths", "0,100", "--context", "1024",
                                                             "--max-new-tokens", "8")),
                                ("vqa", "llama-3.2-11b-vision-instruct", ("--limit", "3"))):
        out = zoo("eval", "--model", model, "--suite", suite, "--shadow", *extra, "--format", "json", db=db)
        assert out.returncode == 0, out.stderr
        runs[suite] = json.loads(out.stdout)["run_id"]
    with sqlite3.connect(db) as conn:  # a run whose process died long ago, never marked
        conn.execute("UPDATE runs SET status = 'running', heartbeat_at = ?, pid = 999999 WHERE id = ?",
                     ((dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).isoformat(), runs["perplexity"]))
    conn.close()
    return db, runs, tasks


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextlib.contextmanager
def serving(db: Path, *args: str):
    """``llama-zoo serve`` in its own process on a free port: (base URL, the process)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "llama_zoo", "serve", "--db", str(db), "--port", str(port), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"serve exited: {server.stderr.read()[-500:]}")
            with contextlib.suppress(OSError):
                _get(base + "/zzz")
                break
            time.sleep(0.2)
        yield base, server
    finally:
        server.terminate()
        server.communicate(timeout=30)


def _fingerprint(db: Path) -> dict[str, str]:
    """The database and its write-ahead log, byte for byte. Left out: the -shm index, where every
    reader, read-only ones too, records what it reads, and an empty -wal, which a read-only reader of
    a closed WAL database creates and cannot remove (SQLite deletes it at the last writer's close):
    neither holds data. Whether the fixture's writers had closed before ``before`` was taken varied."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(db.parent.glob(db.name + "*"))
            if not p.name.endswith("-shm") and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_viewer_in_headless_chromium(store):
    pytest.importorskip("playwright", reason="playwright drives Chromium: pip install playwright")
    from playwright.sync_api import sync_playwright

    db, runs, tasks = store
    before = _fingerprint(db)
    with serving(db) as (base, _), sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))

        # the leaderboards, each completed run linked to its page
        page.goto(base + "/")
        linked = {a.get_attribute("href") for a in page.query_selector_all("a.run-link")}
        assert {f"/runs/{runs[k]}" for k in ("code-llama-7b", "code-llama-13b", "needle", "vqa")} <= linked

        # a run's page: a known sample's output, and the failed filter keeps failed samples only
        page.click(f"a.run-link[href='/runs/{runs['code-llama-7b']}']")
        first_solution = tasks[0][1]["canonical_solution"].strip().splitlines()[0].strip()
        assert first_solution in page.inner_text("#sample-0")
        assert len(page.query_selector_all(".sample")) == len(tasks)
        page.select_option("select[name=verdict]", "failed")
        page.click("form.filter button")
        page.wait_for_url("**verdict=failed**")
        shown = page.query_selector_all(".sample")
        assert len(shown) == len(tasks) - RIGHT["code-llama-7b"]
        assert {s.get_attribute("data-verdict") for s in shown} == {"failed"}

        # the needle run: its needles marked in the text
        page.goto(f"{base}/runs/{runs['needle']}")
        assert page.query_selector_all(".sample mark")
        assert "shadow weights" in page.inner_text(".shadow-note")

        # the vqa run: each question's image, drawn again from its id
        page.goto(f"{base}/runs/{runs['vqa']}")
        images = page.query_selector_all(".sample img.question")
        assert len(images) == 3 and all(i.evaluate("i => i.complete && i.naturalWidth > 0") for i in images)

        # compare: the paired test and the documents where the two runs disagree (tasks 3, 4 and 5)
        page.goto(f"{base}/compare?a={runs['code-llama-7b']}&b={runs['code-llama-13b']}")
        differing = [d.get_attribute("data-key") for d in page.query_selector_all(".sample[data-key]")]
        assert differing == [f"{task}#0" for task, _ in tasks[RIGHT["code-llama-7b"]:RIGHT["code-llama-13b"]]]
        assert "pass rate" in page.inner_text("table")
        assert errors == []
        assert requests and all(u.startswith(base + "/") for u in requests)  # nothing leaves loopback
        browser.close()
    assert _fingerprint(db) == before  # read-only: not a byte of the database changed
    with sqlite3.connect(db) as conn:  # nor was the dead run marked, as a writer would have
        assert conn.execute("SELECT status FROM runs WHERE id = ?", (runs["perplexity"],)).fetchone() == ("running",)
    conn.close()


@pytest.mark.slow
def test_bad_urls_are_a_page_that_says_what_is_wrong(store):
    db, runs, _ = store
    humaneval = runs["code-llama-7b"]
    with serving(db) as (base, server):
        for path, status, says in (
                ("/runs/nosuchrun", 404, "no run &#39;nosuchrun&#39;"),
                (f"/runs/{humaneval}?min=abc&score=passed", 400, "min must be a number, not &#39;abc&#39;"),
                (f"/runs/{humaneval}?verdict=maybe", 400, "verdict must be passed or failed"),
                (f"/runs/{humaneval}?min=1", 400, "min and max bound a score: name it with score=KEY"),
                (f"/runs/{humaneval}?after=x", 400, "after must be a sample index"),
                (f"/runs/{runs['vqa']}?verdict=failed", 400, "no pass/fail verdict"),
                (f"/runs/{runs['vqa']}/images/99.png", 404, "has no sample #99 with an image"),
                (f"/runs/{humaneval}/images/0.png", 404, "has no sample #0 with an image"),
                (f"/compare?a={humaneval}&b={runs['vqa']}", 409, "are from different suites"),
                ("/compare?a=" + humaneval, 400, "compare two runs"),
                ("/elsewhere", 404, "the viewer has /, /runs/RUN")):
            code, html = _get(base + path)
            assert code == status and says in html and "Traceback" not in html, (path, code, html[-400:])
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err


def test_a_database_that_is_not_there_is_one_line_and_is_not_made(zoo, tmp_path):
    missing = tmp_path / "nothing.db"
    out = zoo("serve", "--db", str(missing))
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: cannot open database sqlite:///{missing}: no such file (give a database that " \
                                 "'llama-zoo eval' has written)"
    assert not missing.exists()


@pytest.mark.slow
def test_another_address_than_loopback_is_warned(store):
    db, _, _ = store
    with serving(db, "--host", "0.0.0.0") as (_, server):
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert err.strip().splitlines()[0] == ("warning: listening on 0.0.0.0: the store's prompts, outputs and provenance "
                                           "are visible to that network (--host 127.0.0.1 keeps them on this machine)")


def test_the_report_links_runs_to_the_viewer_only_when_asked(zoo, tmp_path):
    from llama_zoo.results.identity import RunConfig
    from llama_zoo.results.store import MetricValue, Store

    store = Store.open(str(tmp_path / "r.db"))
    config = RunConfig(model_id="llama-2-7b", spec_hash="s", suite="perplexity", suite_version="1", backend="hf",
                       weights_source="hub", dataset_name="d", dataset_hash="d", options={})
    with store.begin(config) as run:
        run.add(0, input_ref="chunk 0", scores={"logprob": -100.0, "tokens": 50, "words": 30, "bytes": 200})
        run.complete([MetricValue("token_perplexity", 5.5)])
    store.close()
    run_id = run.run_id
    assert zoo("report", "-o", str(tmp_path / "plain.html"), db=tmp_path / "r.db").returncode == 0
    assert "/runs/" not in (tmp_path / "plain.html").read_text()  # self-contained: links nowhere
    out = zoo("report", "-o", str(tmp_path / "linked.html"), "--link-base", "http://127.0.0.1:8000/",
              db=tmp_path / "r.db")
    assert out.returncode == 0, out.stderr
    assert f'href="http://127.0.0.1:8000/runs/{run_id}"' in (tmp_path / "linked.html").read_text()
    out = zoo("report", "--format", "md", "--link-base", "http://127.0.0.1:8000", db=tmp_path / "r.db")
    assert out.returncode == 2 and "md and csv have no links" in out.stderr



@pytest.fixture
def hostile(tmp_path):
    """A cleanly closed store holding text meant to break a page: markup in prompts and outputs,
    needles that are also entity names, scores that are not a mapping."""
    from llama_zoo.results.identity import RunConfig
    from llama_zoo.results.store import Store

    db = tmp_path / "r.db"
    store = Store.open(str(db))
    runs = {}
    for suite in ("needle", "humaneval"):
        config = RunConfig(model_id="llama-3.1-8b", spec_hash="s", suite=suite, suite_version="1", backend="hf",
                           weights_source="hub", dataset_name="d", dataset_hash=suite, options={})
        with store.begin(config) as run:
            run.add(0, input="<script>alert('prompt')</script>", output="a &lt; b amp <img src=x onerror=alert(1)>",
                    target="amp, lt", scores={"passed": False, "score": 0.0})
            run.add(1, input="plain", output="plain", scores=[1, 2, 3])
            run.complete([])
        runs[suite] = run.run_id
    store.close()  # checkpointed: the file alone
    return db, runs


def _client(db):
    from starlette.testclient import TestClient

    from llama_zoo.reports.viewer import create_app
    from llama_zoo.results.store import Store

    return TestClient(create_app(Store.open(str(db), read_only=True)), base_url="http://127.0.0.1:8000")


def test_stored_text_is_shown_as_text_and_odd_scores_do_not_break_a_page(hostile):
    db, runs = hostile
    client = _client(db)
    page = client.get(f"/runs/{runs['needle']}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#39;prompt&#39;)&lt;/script&gt;" in page.text
    # the needles are marked where they stand in the raw text, never inside an entity
    assert "a &amp;<mark>lt</mark>; b <mark>amp</mark> &lt;img" in page.text
    assert 'id="sample-1"' in page.text  # scores that are not a mapping: shown, not a failed page
    assert client.get(f"/runs/{runs['humaneval']}?verdict=failed").status_code == 200


def test_odd_numbers_in_a_url_are_a_400_not_a_failure(hostile):
    db, runs = hostile
    client = _client(db)
    for query, says in (("?after=" + "9" * 30, "after must be a sample index from -1"),
                        ("?after=-5", "after must be a sample index from -1"),
                        ("?score=score&min=nan", "min must be a finite number"),
                        ("?score=score&max=1e999", "max must be a finite number")):
        page = client.get(f"/runs/{runs['humaneval']}{query}")
        assert page.status_code == 400 and says in page.text, (query, page.status_code)
    assert client.get(f"/runs/{runs['humaneval']}/images/{'9' * 30}.png").status_code == 404


def test_on_loopback_a_request_for_another_host_is_refused(hostile):
    """A site that rebinds its DNS name to 127.0.0.1 reaches the port, but names itself."""
    db, runs = hostile
    client = _client(db)
    assert client.get(f"/runs/{runs['needle']}").status_code == 200
    refused = client.get(f"/runs/{runs['needle']}", headers={"host": "evil.example:8000"})
    assert refused.status_code == 400 and "is not this machine&#39;s" in refused.text
    assert client.get("/", headers={"host": "[::1]:8000"}).status_code == 200


def test_reading_a_closed_database_changes_none_of_its_bytes(hostile):
    """SQLite opens a write-ahead-log database read-only through its -shm index, which it creates
    beside the file with an empty -wal; the database's own bytes do not change."""
    db, runs = hostile
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    client = _client(db)
    for path in ("/", f"/runs/{runs['needle']}", f"/compare?a={runs['needle']}&b={runs['humaneval']}"):
        client.get(path)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    beside = {p.name: p.stat().st_size for p in db.parent.iterdir() if p.name != db.name}
    assert set(beside) <= {"r.db-wal", "r.db-shm"} and beside.get("r.db-wal", 0) == 0, beside
