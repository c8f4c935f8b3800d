"""HumanEval-Infilling: derivation equal to the official files, Code Llama's FIM prompts by token id,
the official example samples, and canonical infills that all pass."""

from __future__ import annotations

import json

import pytest

from llama_zoo.suites.code import humaneval, infilling
from llama_zoo.registry.catalog import load_catalog

FIELDS = ("task_id", "prompt", "suffix", "canonical_solution", "test", "entry_point")


def official(shared, subset: str) -> dict[str, dict]:
    path = shared / "human_eval_infilling" / f"HumanEval-{infilling.SUBSETS[subset]}.jsonl.gz"
    return {r["task_id"]: r for r in humaneval.read_jsonl(path)}


@pytest.mark.parametrize("subset,count", [("single-line", 1033), ("multi-line", 5815)])
def test_derived_tasks_equal_the_official_files(humaneval_problems, shared, subset, count):
    derived = infilling.load_tasks(subset, humaneval_problems).tasks
    theirs = official(shared, subset)
    assert len(derived) == len(theirs) == count
    assert list(derived) == list(theirs)  # same tasks, same order
    for task_id, task in derived.items():
        assert {k: task[k] for k in FIELDS} == {k: theirs[task_id][k] for k in FIELDS}, task_id


@pytest.mark.parametrize("subset,count", [("random-span", 1640), ("random-span-light", 164)])
def test_random_span_files_cut_humaneval_solutions(humaneval_problems, shared, subset, count):
    tasks = infilling.load_tasks(subset, humaneval_problems, str(shared / "human_eval_infilling")).tasks
    assert len(tasks) == count
    for task_id, task in tasks.items():
        problem = humaneval_problems.tasks["/".join(task_id.split("/")[1:3])]
        if subset == "random-span":
            assert task["prompt"] + task["canonical_solution"] + task["suffix"] == problem["prompt"] + problem["canonical_solution"]
        else:  # the light set was cut from revised solutions and tests: it keeps the task and signature
            assert f"def {problem['entry_point']}(" in task["prompt"] and task["entry_point"] == problem["entry_point"]


@pytest.mark.slow
def test_all_canonical_infills_pass(humaneval_problems, shared):
    total = 0
    for subset in infilling.SUBSETS:
        tasks = infilling.load_tasks(subset, humaneval_problems, None if "line" in subset else str(shared / "human_eval_infilling"))
        limits = humaneval.canonical_limits(tasks, build=infilling.job)
        outcomes = humaneval.score(tasks, [(t, task["canonical_solution"]) for t, task in tasks.tasks.items()], limits,
                                   build=infilling.job)
        assert [o.outcome for o in outcomes] == ["passed"] * len(outcomes), subset
        total += len(outcomes)
    assert total == 8652


@pytest.mark.slow
def test_official_example_samples_score_0_3(shared):
    folder = shared / "human_eval_infilling"
    problem = humaneval.read_jsonl(folder / "example_problem.jsonl")[0]
    tasks = humaneval.Problems("example", None, {problem["task_id"]: problem})
    samples = [(s["task_id"], s["completion"]) for s in humaneval.read_jsonl(folder / "example_samples.jsonl")]
    outcomes = humaneval.score(tasks, samples, humaneval.canonical_limits(tasks, build=infilling.job),
                               build=infilling.job)
    # only the bare "return " completions (any indentation) make "return 1" with the suffix
    assert [o.passed for o in outcomes] == [False] * 7 + [True] * 3
    assert outcomes[0].outcome == "error" and "SyntaxError" in outcomes[0].detail  # the program does not even load
    value = humaneval.metrics([(t, o.passed) for (t, _), o in zip(samples, outcomes)], ks=(1,))[0]["value"]
    assert value == pytest.approx(0.3)


CODE_LLAMA_EXTRA = ["▁<SU", "▁<SUF", "▁<PRE", "▁<M", "▁<MID", "▁<E", "▁<EOT", "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>",
                    "▁<EOT><EOT>", "▁<EOT><EOT><EOT>", "▁<EOT><EOT><EOT><EOT>", "▁<EOT><EOT><EOT><EOT><EOT>",
                    "▁<EOT><EOT><EOT><EOT><EOT><EOT>"]


@pytest.fixture(scope="module")
def code_llama_tokenizer(shared):
    """Code Llama's tokenizer: Llama 2's SentencePiece vocabulary plus its 16 extra tokens (32000-32015)."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama2")
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in CODE_LLAMA_EXTRA], special_tokens=True)
    assert len(tokenizer) == 32016
    return tokenizer


def test_code_llama_fim_prompts_by_token_id(code_llama_tokenizer):
    tok = code_llama_tokenizer
    fim = load_catalog().get("code-llama-7b").tokenizer.fim
    assert tok.convert_tokens_to_ids(["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"]) == [fim.prefix, fim.suffix, fim.middle, fim.eot]
    ids = tok.convert_tokens_to_ids
    prefix = ids(["▁def", "▁f", "():", "<0x0A>", "▁▁▁", "▁return"])  # "def f():\n    return" with SentencePiece's space
    suffix = ids(["1", "<0x0A>"])  # "1\n" with no leading space
    psm = infilling.fim_prompt(tok, fim, "def f():\n    return", "1\n", "psm", bos=1)
    assert psm == [1, 32007] + prefix + [32008] + suffix + [32009]
    spm = infilling.fim_prompt(tok, fim, "def f():\n    return", "1\n", "spm", bos=1)
    assert spm == [1, 32007, 32008] + suffix + [32009] + ids(["def", "▁f", "():", "<0x0A>", "▁▁▁", "▁return"])


def test_decoded_middles_keep_their_leading_spaces(code_llama_tokenizer):
    tok = code_llama_tokenizer
    middle = tok.convert_tokens_to_ids(["▁▁▁", "▁return", "▁x", "<0x0A>"]) + [32010, 5]
    assert infilling.decode_middle(tok, middle, 32010) == "    return x\n"


def test_infilling_cli_end_to_end_and_refusal(zoo, tmp_path):
    run = lambda *a: zoo(*a, db=tmp_path / "r.db")  # noqa: E731
    done = run("eval", "--model", "code-llama-7b", "--suite", "humaneval-infilling", "--fim-mode", "psm", "--shadow",
               "--limit", "5", "--max-new-tokens", "16", "--format", "json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    shown = json.loads(run("runs", "show", run_id, "--format", "json", "--samples", "5").stdout)
    assert shown["samples_stored"] == 5 and shown["options"]["fim_mode"] == "psm"
    assert all(s["scores"]["outcome"] in ("passed", "failed", "timeout", "error") for s in shown["samples"])
    assert shown["samples"][0]["input_ref"] == "SingleLineInfilling/HumanEval/0/L0"
    refused = run("eval", "--model", "code-llama-34b", "--suite", "humaneval-infilling")
    assert refused.returncode == 2 and "cannot fill in the middle" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
