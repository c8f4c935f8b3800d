"""Recipes (which suite reproduces which published number) and verdicts, on constructed rows and runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llama_zoo.orchestration.recipes import Measured, data_status, recipe_for, recipes, verdict


def row(benchmark: str, shots: str | None = None, value: float = 50.0):
    return SimpleNamespace(benchmark=benchmark, shots=shots, value=value)


def measured(value: float, low: float | None, high: float | None, source: str = "hub") -> Measured:
    return Measured(value, low, high, source, ("run",))


@pytest.mark.parametrize(("published", "expected"), [
    (66.7, "reproduced"),   # inside [64.0, 68.0]
    (64.0, "reproduced"),   # on the bound
    (70.0, "below"),        # the measurement's whole interval lies under the card
    (60.0, "above"),
])
def test_verdict_holds_the_published_value_against_the_interval(published, expected):
    assert verdict(published, measured(66.0, 64.0, 68.0)) == expected


def test_shadow_and_random_weights_never_reproduce():
    for source in ("shadow", "random"):
        said = verdict(66.0, measured(66.0, 60.0, 70.0, source))
        assert said != "reproduced" and source in said


def test_meta_own_results_and_missing_intervals_are_not_verdicts():
    assert verdict(66.0, measured(66.0, 60.0, 70.0, "published")) == "Meta's own results"
    assert verdict(66.0, measured(66.0, None, None)) == "no interval"
    assert verdict(66.0, None) == "not run"


def test_recipes_follow_the_protocol_of_the_table_the_row_is_in(catalog):
    instruct, base = catalog.get("llama-3.1-8b-instruct"), catalog.get("llama-3.1-8b")
    assert recipe_for(instruct, row("MMLU", "5")).suite == "meta-evals:mmlu"
    assert recipe_for(base, row("MMLU", "5")).suite == "meta-evals:mmlu"
    # no Meta evals dataset for Llama 3: lm-eval's subjects under Meta's protocol, macro-averaged
    llama3 = recipe_for(catalog.get("llama-3-8b"), row("MMLU", "5"))
    assert (llama3.suite, llama3.combine, dict(llama3.options)) == ("lm-eval:meta_mmlu_5shot_char_macro", "macro", {"num_fewshot": 5})
    assert recipe_for(base, row("ARC-Challenge", "25")).suite == "lm-eval:meta_arc_challenge_25shot_char"
    assert recipe_for(instruct, row("ARC-C", "0")).suite == "lm-eval:arc_challenge_llama"
    humaneval = recipe_for(instruct, row("HumanEval", "0"))
    assert humaneval.suite == "humaneval" and humaneval.options["max_new_tokens"] == 1024
    bfcl = recipe_for(instruct, row("BFCL", "0"))
    assert bfcl.suite is None and "#26" in bfcl.reason
    assert recipe_for(instruct, row("A benchmark no card prints")) is None


def test_every_recipe_cites_its_source_or_says_why_it_has_none():
    for recipe in recipes():
        assert (recipe.suite and recipe.source) or (recipe.suite is None and recipe.reason), recipe


def test_data_found_locally_else_the_hub_else_how_to_get_it(catalog, tmp_path, monkeypatch):
    instruct = catalog.get("llama-3.1-8b-instruct")
    recipe = recipe_for(instruct, row("MMLU", "5"))
    monkeypatch.setenv("LLAMA_ZOO_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = data_status(recipe, instruct)
    assert not missing.reachable
    assert "huggingface-cli download --repo-type dataset meta-llama/Llama-3.1-8B-Instruct-evals" in missing.where
    (tmp_path / "meta-llama" / "Llama-3.1-8B-Instruct-evals").mkdir(parents=True)
    found = data_status(recipe, instruct)
    assert found.reachable and found.where.startswith("local ")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    hub = data_status(recipe_for(instruct, row("ARC-C", "0")), instruct)
    assert hub.reachable and hub.where == "hub allenai/ai2_arc"


def every_published_row(catalog):
    for model in list(catalog):
        spec = catalog.get(model.id)  # a look-up by name attaches the published numbers
        for row in spec.published:
            if not row.variant:
                yield spec, row


def test_every_published_number_has_a_recipe_or_a_reason_and_every_recipe_serves_one(catalog):
    used = set()
    for spec, row in every_published_row(catalog):
        recipe = recipe_for(spec, row)
        assert recipe is not None, f"{spec.id}: {row.benchmark} ({row.table}) has neither a recipe nor a reason"
        used.add(recipes().index(recipe))
    unused = [r.benchmarks for i, r in enumerate(recipes()) if i not in used]
    assert not unused, f"recipes matching no published number (a misspelt benchmark?): {unused}"


def test_the_rounding_allowance_follows_the_printed_precision():
    assert verdict(66.7, measured(66.0, 64.0, 66.66)) == "reproduced"   # 66.66 rounds to 66.7
    assert verdict(66.7, measured(66.0, 64.0, 66.6)) == "below"
    assert verdict(0.079, measured(0.11, 0.10, 0.13)) == "above"      # three decimals: no 0.05 allowance
    assert verdict(0.079, measured(0.08, 0.0794, 0.13)) == "reproduced"
    assert verdict(50.88, measured(50.0, 49.0, 50.876)) == "reproduced"  # two decimals: 0.005
    assert verdict(50.88, measured(50.0, 49.0, 50.87)) == "below"


def test_a_limited_run_gets_no_verdict():
    limited = Measured(66.0, 60.0, 70.0, "hub", ("run",), limit=20)
    assert verdict(66.0, limited) == "limited to 20 items: no verdict"


def test_a_macro_over_runs_of_mixed_weights_is_not_a_measurement():
    assert verdict(66.0, measured(66.0, 60.0, 70.0, "hub,shadow")).startswith("not a measurement")
