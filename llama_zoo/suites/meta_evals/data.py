"""Meta's per-sample evals datasets (``meta-llama/<Model>-evals``): which benchmarks we run and how,
and reading their rows from a file, a local snapshot or the hub.

Each dataset holds one config per benchmark, ``<Model>-evals__<benchmark>__details``, split
``latest``, one row per question with the exact prompt Meta sent (``input_final_prompts``), the
gold answers (``input_correct_responses``) and Meta's verdict (``is_correct``). Only those three
columns are required; ``input_question_hash`` (when present) is the row's key, so our run of a row
and Meta's pair up in ``compare``.

The recipes are those of Meta's llama-cookbook (end-to-end-use-cases/benchmarks/llm_eval_harness/
meta_eval/meta_template) and llama-models (models/llama3_1/eval_details.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.local_data import local_dataset

REQUIRED = ("input_final_prompts", "input_correct_responses", "is_correct")
SPLIT = "latest"
CHAT_HEADER = "<|start_header_id|>"  # an instruct prompt is already chat-formatted
PRETRAIN_GOLD = re.compile(r"Answer:\s*([A-Z])")  # a pretrain choice row's gold, as "Answer: B"


@dataclass(frozen=True)
class Method:
    """How one kind of model is asked a benchmark: ``generate`` (greedy, the answer is group 1 of
    ``pattern`` in the reply; ``match`` says which match lm-eval's regex filter keeps) or ``choice``
    (the letters' log-likelihood after the prompt without its trailing " X")."""

    kind: str
    max_new_tokens: int = 0
    pattern: str | None = None
    match: str = "last"  # the cookbook's group_select -1; "first" where it sets none
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Benchmark:
    name: str
    average: str  # what Meta reports: "macro" (mean of per-subtask means) or "micro" (over rows)
    instruct: Method
    pretrain: Method | None  # None: Meta ran it on instruct models only

    def method(self, pretrain: bool) -> Method:
        return self.pretrain if pretrain and self.pretrain is not None else self.instruct


CHOICE = Method("choice")
GPQA = Method("generate", 2048, r"best answer is ([A-Z])")  # gpqa_cot: 0-shot CoT, 2048 tokens

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    # instruct: Meta's prompt as sent (any shots inside it), up to the cookbook recipe's 1,024 tokens unless
    # the row's eval_config says less, the last " X" in the reply; pretrain: 5-shot, letters by NLL
    Benchmark("mmlu", "macro", Method("generate", 1024, r" ([A-D])"), CHOICE),
    # 5-shot CoT both; the pretrain prompt's examples end "answer is (X)", the instruct one's "best answer is X"
    Benchmark("mmlu_pro", "macro", Method("generate", 1024, r"best answer is ([A-Z])"),
              Method("generate", 512, r"answer is \(([A-Z])\)", match="first", stop=("\n\nQ: ",))),
    Benchmark("gpqa", "micro", GPQA, None),
    Benchmark("gpqa_diamond", "micro", GPQA, None),
)}


def benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise LlamaZooError(f"unknown Meta evals benchmark {name!r}; supported: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


@dataclass(frozen=True)
class Row:
    """One question as Meta evaluated it."""

    index: int
    ref: str  # input_question_hash, or "row N"
    prompt: str  # input_final_prompts[0], as Meta sent it
    gold: str  # input_correct_responses[0]
    meta_correct: bool
    subtask: str | None = None
    meta_output: str | None = None  # output_prediction_text[0]
    meta_parsed: str | None = None
    choices: int | None = None  # len(input_choice_list)
    max_gen_len: int | None = None  # eval_config's


@dataclass(frozen=True)
class EvalsData:
    name: str  # where the rows came from: the config, or a file
    revision: str | None
    rows: tuple[Row, ...]
    content_hash: str
    pretrain: bool  # the rows are a pretrained model's (no chat formatting, or "Answer: X" golds)


def evals_repo(spec: Any, given: str | None) -> str:
    """The evals dataset of a model: ``--evals-dataset``, else ``<hub repo>-evals``."""
    if given:
        return given
    if not getattr(spec, "hf_repo", None):
        raise LlamaZooError(f"{spec.id} has no hub repo to name its Meta evals dataset: give --evals-dataset "
                            "meta-llama/<Model>-evals")
    return f"{spec.hf_repo}-evals"


def config_name(repo: str, bench: str) -> str:
    return f"{repo.rstrip('/').split('/')[-1]}__{bench}__details"


def how_to_get(repo: str, flag: str = "--dataset") -> str:
    """The one sentence every 'not found' ends with (``flag``: the command's option for a file of rows)."""
    return (f"download it with 'huggingface-cli download --repo-type dataset {repo} --local-dir "
            f"$LLAMA_ZOO_DATA/{repo}' (a gated dataset: accept its licence on the hub first), or give {flag} FILE")


def load(repo: str, bench: str, file: str | None = None, revision: str | None = None,
         flag: str = "--dataset") -> EvalsData:
    """The benchmark's rows: ``file`` (a parquet/jsonl/json file or a snapshot directory), else a
    snapshot under ``$LLAMA_ZOO_DATA/<repo>``, else the hub. ``flag`` is how the user gives a file,
    for the messages."""
    config = config_name(repo, bench)
    if file:
        path = Path(file).expanduser()
        if path.is_dir():
            return _from_snapshot(path, config, repo, flag)
        if not path.is_file():
            raise LlamaZooError(f"{flag} {file}: no such file or directory")
        return evals_data(str(path), None, read_file(path))
    snapshot = local_dataset(repo)
    if snapshot is not None:
        return _from_snapshot(snapshot, config, repo, flag)
    return _from_hub(repo, config, revision, flag)


def read_file(path: Path) -> list[dict[str, Any]]:
    """Rows of a parquet (Meta's files end .parquet.gzip), JSON-lines or JSON file."""
    name = path.name.lower()
    if ".parquet" in name:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise LlamaZooError("reading parquet needs pyarrow: pip install 'llama-zoo[parquet]'") from None
        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow's many error types: a broken file, said in one line
            raise LlamaZooError(f"{path}: not a parquet file ({type(exc).__name__})") from None
    if name.endswith((".jsonl", ".jsonl.gz")):
        from llama_zoo.suites.core.records import jsonl_file

        return [value for _, value in jsonl_file(path)]
    if name.endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LlamaZooError(f"{path}: not JSON ({type(exc).__name__})") from None
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            data = data["rows"]
        if not isinstance(data, list):
            raise LlamaZooError(f"{path}: expected a list of rows")
        return data
    raise LlamaZooError(f"{path}: expected a .parquet, .jsonl or .json file of Meta's evals rows")


def _front_matter(readme: Path) -> dict[str, Any]:
    import yaml

    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        data = yaml.safe_load(text[3:end if end >= 0 else None])
    except yaml.YAMLError:
        raise LlamaZooError(f"{readme}: its YAML front matter cannot be read") from None
    return data if isinstance(data, dict) else {}


def _split_paths(data_files: Any, split: str) -> list[str]:
    """The file patterns of ``split`` in a config's ``data_files`` (the hub's three spellings: a list
    of {split, path}, a mapping split -> path, or one path)."""
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        found = data_files.get(split)
        return [found] if isinstance(found, str) else list(found or [])
    paths: list[str] = []
    for entry in data_files or []:
        if isinstance(entry, dict) and entry.get("split") == split:
            path = entry.get("path")
            paths += [path] if isinstance(path, str) else list(path or [])
    return paths


def _from_snapshot(root: Path, config: str, repo: str, flag: str) -> EvalsData:
    """A local copy of the dataset repository: its README's ``configs`` map each config's split to files."""
    readme = root / "README.md"
    if not readme.is_file():
        raise LlamaZooError(f"{root} has no README.md naming its configs; {how_to_get(repo, flag)}")
    configs = {c.get("config_name"): c for c in _front_matter(readme).get("configs") or [] if isinstance(c, dict)}
    if config not in configs:
        known = ", ".join(sorted(str(c).split("__")[1] if "__" in str(c) else str(c) for c in configs)) or "none"
        raise LlamaZooError(f"{root} has no config {config} (its benchmarks: {known})")
    files = sorted({f for pattern in _split_paths(configs[config].get("data_files"), SPLIT) for f in root.glob(pattern)
                    if f.is_file()})
    if not files:
        raise LlamaZooError(f"{root}: config {config} names no file of split {SPLIT!r} that is here; {how_to_get(repo, flag)}")
    return evals_data(config, None, [row for f in files for row in read_file(f)])


def _from_hub(repo: str, config: str, revision: str | None, flag: str) -> EvalsData:
    where = f"not found under $LLAMA_ZOO_DATA/{repo}"
    try:
        import datasets
    except ImportError:
        raise LlamaZooError(f"{repo}: {where} and the datasets package is missing for the hub; {how_to_get(repo, flag)}") from None
    try:
        data = datasets.load_dataset(repo, name=config, split=SPLIT, revision=revision)
    except Exception as exc:  # noqa: BLE001 - offline, gated, unknown config: one line saying how to get it
        raise LlamaZooError(f"{repo} ({config}): {where} and not loadable from the hub ({type(exc).__name__}); "
                            f"{how_to_get(repo, flag)}") from None
    return evals_data(config, revision or getattr(data, "_fingerprint", None), list(data))


def evals_data(name: str, revision: str | None, records: Sequence[Any]) -> EvalsData:
    """Rows in Meta's columns as ``Row``s, refusing what lacks a required column (named)."""
    if not records:
        raise LlamaZooError(f"{name}: no rows")
    missing = [c for c in REQUIRED if not isinstance(records[0], dict) or c not in records[0]]
    if missing:
        raise LlamaZooError(f"{name}: not Meta's evals layout: missing required column{'s' * (len(missing) > 1)} "
                            f"{', '.join(missing)}")
    rows = tuple(_row(n, rec, name) for n, rec in enumerate(records))
    first = rows[0]
    pretrain = CHAT_HEADER not in first.prompt or bool(PRETRAIN_GOLD.fullmatch(first.gold.strip()))
    return EvalsData(name, revision, rows, content_hash(rows), pretrain)


def _texts(value: Any) -> list[str]:
    """A list-of-strings column as a list (parquet gives lists, pandas arrays, a hand-written file a string)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _row(n: int, rec: dict[str, Any], name: str) -> Row:
    prompts, golds = _texts(rec.get("input_final_prompts")), _texts(rec.get("input_correct_responses"))
    if not prompts or not golds or rec.get("is_correct") is None:
        raise LlamaZooError(f"{name}: row {n} has an empty input_final_prompts, input_correct_responses or is_correct")
    outputs, choices = _texts(rec.get("output_prediction_text")), rec.get("input_choice_list")
    parsed = rec.get("output_parsed_answer")
    return Row(index=n, ref=str(rec.get("input_question_hash") or f"row {n}"), prompt=prompts[0], gold=golds[0],
               meta_correct=_bool(rec["is_correct"]), subtask=rec.get("subtask_name") or None,
               meta_output=outputs[0] if outputs else None, meta_parsed=None if parsed is None else str(parsed),
               choices=len(choices) if isinstance(choices, (list, tuple, dict)) and choices else None,
               max_gen_len=_max_gen_len(rec.get("eval_config")))


def _bool(value: Any) -> bool:
    if isinstance(value, str):  # a CSV-minded export
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _max_gen_len(config: Any) -> int | None:
    """``eval_config``'s max_gen_len (Meta stores the config as a mapping of strings, or as JSON)."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError:
            return None
    try:
        return int((config or {}).get("max_gen_len")) if isinstance(config, dict) and config.get("max_gen_len") else None
    except (TypeError, ValueError):
        return None


def content_hash(rows: Sequence[Row]) -> str:
    """The dataset's identity: every row's key, prompt and gold, whatever file they were read from,
    so our run and an import of Meta's rows compare (``compare`` wants equal hashes)."""
    payload = json.dumps([[r.ref, r.prompt, r.gold] for r in rows], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()
