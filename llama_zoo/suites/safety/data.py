"""Labelled safety data: what the classifier suites score.

Named sets are found, in this order, as files under the data directories (``$LLAMA_ZOO_DATA``, a
``os.pathsep`` list, then the user data directory's ``data/``), searched recursively by the file
names their publishers use, and on the Hugging Face hub. Any local CSV or JSONL (optionally
gzip'd) with a ``prompt`` (or ``text``) column, an optional ``response``, a ``label`` (safe/unsafe,
benign/malicious, 0/1, true/false) and optional category columns is read as well.

OpenAI's moderation set labels eight categories (S, H, V, HR, SH, S3, H2, V2), each 0, 1 or
missing (unlabelled): a prompt is unsafe when any category is 1, safe otherwise, and each
category is scored only on the prompts that label it.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.local_data import data_dirs, hub_offline
from llama_zoo.suites.core.records import json_lines

MODERATION_CATEGORIES = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
TRUE_WORDS = {"1", "1.0", "unsafe", "true", "malicious", "injection", "jailbreak", "yes"}
FALSE_WORDS = {"0", "0.0", "safe", "false", "benign", "no"}


class DatasetError(LlamaZooError):
    pass


@dataclass(frozen=True)
class Row:
    id: str  # the dataset's own id where it has one, else the 0-based row index
    text: str  # the prompt (what a user said)
    label: int  # 1 = unsafe / an attack
    response: str | None = None  # what the agent answered, for response classification
    categories: dict[str, int] = field(default_factory=dict)  # labelled categories only
    source: str | None = None  # which file of a mixture
    groups: tuple[str, ...] = ()  # what results are broken down by: XSTest's prompt type, Do-Not-Answer's risk areas


@dataclass(frozen=True)
class LabelledSet:
    name: str
    revision: str | None
    rows: list[Row]

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for r in self.rows:
            fields = [r.id, r.text, r.response, r.label, sorted(r.categories.items()), r.source]
            digest.update(json.dumps(fields + ([list(r.groups)] if r.groups else []), ensure_ascii=False).encode())
        return digest.hexdigest()


def parse_label(value: Any, where: str) -> int:
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return 1
    if word in FALSE_WORDS:
        return 0
    raise DatasetError(f"{where}: label {value!r} is not safe/unsafe, benign/malicious or 0/1")


# --------------------------------------------------------------------------- reading files


def read_records(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV, JSONL or JSON-list file, or a text file of one prompt a line (each may be gzip'd)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")  # a spreadsheet's CSV may begin with a byte-order mark
    kind = path.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    if kind == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    if kind == "json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected a JSON list")
        return data
    if kind == "txt":
        return [{"prompt": line.strip()} for line in text.splitlines() if line.strip()]
    if kind == "jsonl":
        return [row for _, row in json_lines(text, str(path))]
    raise DatasetError(f"{path}: expected a .csv, .jsonl, .json or .txt file (optionally .gz)")


def labelled_rows(records: list[Any], where: str, *, text_keys=("prompt", "text"), need_label: bool = True,
                  source: str | None = None) -> list[Row]:
    """Rows from generic records: text, optional response and id, a label or moderation categories."""
    rows = []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DatasetError(f"{where}: row {n} is not an object")
        text = next((rec[k] for k in text_keys if isinstance(rec.get(k), str)), None)
        if text is None:
            raise DatasetError(f"{where}: row {n} has no {' or '.join(repr(k) for k in text_keys)} column")
        categories = {c: parse_label(rec[c], f"{where}: row {n}, category {c}")
                      for c in MODERATION_CATEGORIES if rec.get(c) not in (None, "")}
        categories.update(_named_categories(rec.get("categories")))
        if rec.get("label") not in (None, ""):
            label = parse_label(rec["label"], f"{where}: row {n}")
        elif categories:
            label = int(any(categories.values()))
        elif need_label:
            raise DatasetError(f"{where}: row {n} has no label (a 'label' column: safe/unsafe or 0/1)")
        else:
            label = -1
        rid = rec.get("id", rec.get("prompt_id"))
        rows.append(Row(str(rid) if rid not in (None, "") else str(n), text, label,
                        rec.get("response") if isinstance(rec.get("response"), str) else None, categories, source))
    # a ``categories`` column names what a row violates: every row labels every category it names
    named = sorted({c for rec in records if isinstance(rec, dict) for c in _named_categories(rec.get("categories"))})
    if named:
        rows = [dataclasses.replace(r, categories={**{c: 0 for c in named}, **r.categories}) for r in rows]
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{where}: ids repeat; give each row a unique 'id' or none (the row index is used)")
    return rows


def _named_categories(value: Any) -> dict[str, int]:
    """A ``categories`` column: a list or a comma-separated string of the categories a row violates."""
    if value in (None, ""):
        return {}
    names = value if isinstance(value, list) else str(value).split(",")
    return {str(name).strip(): 1 for name in names if str(name).strip()}


# --------------------------------------------------------------------------- named sets


@dataclass(frozen=True)
class Named:
    """A public set: its file name(s) as published, how its records become rows (the same function
    reads the published file and the hub copy, whose columns it knows), and where it is on the hub."""

    name: str
    files: tuple[str, ...]
    rows: Callable[[list[Any], str], list[Row]]
    hub: tuple[str, str | None, str] | None = None  # (repo id, config, split); None: published as files only


def _xstest(records: list[Any], where: str) -> list[Row]:
    if records and "id" not in records[0]:  # the published CSV numbers its rows from 1
        records = [{**r, "id": i + 1} for i, r in enumerate(records)]
    rows = labelled_rows(records, where, source="xstest")
    return [dataclasses.replace(row, groups=(rec["type"],)) if rec.get("type") else row for row, rec in zip(rows, records)]


def _moderation(records: list[Any], where: str) -> list[Row]:
    return labelled_rows(records, where, source="openai-moderation")


def _harmbench(records: list[Any], where: str) -> list[Row]:
    # HarmBench's standard behaviours, every one a request a model should refuse (its full CSV also
    # holds contextual and copyright behaviours, which need their context: left out)
    records = [r for r in records if r.get("FunctionalCategory", "standard") == "standard"]
    return [Row(f"harmbench-{i}", r.get("prompt") or r["Behavior"], 1, source="harmbench",
                groups=tuple(g for g in (r.get("category") or r.get("SemanticCategory"),) if g)) for i, r in enumerate(records)]


def _do_not_answer(records: list[Any], where: str) -> list[Row]:
    return [Row(f"do-not-answer-{r.get('id', i)}", r.get("prompt") or r["question"], 1, source="do-not-answer",
                groups=tuple(r.get("intents") or ([r["risk_area"]] if r.get("risk_area") else [])))
            for i, r in enumerate(records)]


def _injections(records: list[Any], where: str) -> list[Row]:
    # CyberSecEval prompt injection: the attack is what the user sends (``user_input``)
    return [Row(f"injection-{r['prompt_id']}", r["user_input"], 1, source="cyberseceval-prompt-injection") for r in records]


def _jailbreaks(records: list[Any], where: str) -> list[Row]:
    # the published file is a list of strings; the hub copy has a prompt column
    return [Row(f"jailbreak-{i}", r if isinstance(r, str) else r["prompt"], 1, source="jailbreaks-in-the-wild")
            for i, r in enumerate(records)]


def _benign_security(records: list[Any], where: str) -> list[Row]:
    return [Row(f"mitre-frr-{i}", r["mutated_prompt"], 0, source="cyberseceval-mitre-frr") for i, r in enumerate(records)]


NAMED = {
    n.name: n for n in (
        Named("xstest", ("xstest_prompts.csv",), _xstest, ("Paul/XSTest", None, "train")),
        Named("openai-moderation", ("samples-1680.jsonl.gz", "samples-1680.jsonl"), _moderation,
              ("mmathys/openai-moderation-api-evaluation", None, "train")),
        Named("harmbench", ("harmbench_prompts.txt", "harmbench_behaviors_text_all.csv"), _harmbench,
              ("walledai/HarmBench", "standard", "train")),
        Named("do-not-answer", ("do_not_answer.jsonl",), _do_not_answer, ("LibrAI/do-not-answer", None, "train")),
        Named("jailbreaks-in-the-wild", ("inthewild_jailbreak_llms.json.gz", "inthewild_jailbreak_llms.json"), _jailbreaks,
              ("TrustAIRLab/in-the-wild-jailbreak-prompts", "jailbreak_2023_12_25", "train")),
        # Purple Llama publishes CyberSecEval's sets in its GitHub repository, not on the hub
        Named("cyberseceval-prompt-injection", ("prompt_injection.json.gz", "prompt_injection.json"), _injections),
        Named("cyberseceval-mitre-frr", ("mitre_frr.json.gz", "mitre_frr.json", "frr.json"), _benign_security),
    )
}


def find_file(names: tuple[str, ...]) -> Path | None:
    for root in data_dirs():
        if root.is_dir():
            for name in names:
                found = sorted(root.rglob(name))
                if found:
                    return found[0]
    return None


def _from_hub(named: Named, revision: str | None) -> LabelledSet:
    if named.hub is None:
        raise DatasetError(f"{named.name}: not found under $LLAMA_ZOO_DATA (it is published as a file, not on the hub); "
                           f"set LLAMA_ZOO_DATA to a directory holding {named.files[0]}")
    try:
        import datasets
    except ImportError:
        raise DatasetError(f"{named.name}: not found under $LLAMA_ZOO_DATA and the datasets package is missing "
                           f"for the hub; set LLAMA_ZOO_DATA to a directory holding {named.files[0]}") from None
    repo, config, split = named.hub
    try:
        data = datasets.load_dataset(repo, config, split=split, revision=revision)
    except Exception as exc:  # unreachable hub, wrong revision  # noqa: BLE001
        raise DatasetError(f"{named.name}: cannot load {repo} from the hub ({type(exc).__name__}); set LLAMA_ZOO_DATA "
                           f"to a directory holding {named.files[0]}, or give --dataset PATH") from None
    return LabelledSet(named.name, revision or getattr(data, "_fingerprint", None), named.rows(list(data), repo))


def load_named(named: Named, revision: str | None = None) -> LabelledSet:
    path = find_file(named.files)
    if path is not None:
        return LabelledSet(named.name, None, named.rows(read_records(path), str(path)))
    return _from_hub(named, revision)


Mixture = tuple[tuple[str, int | None], ...]  # (named set, keep only this label or None for all)


def check_here(dataset: str | None, revision: str | None, _options: object = None, *, default: str, named: dict[str, Named] = NAMED,
               mixtures: dict[str, Mixture] | None = None) -> None:
    """Before a model loads: the error ``load_labelled`` would raise for a named set found neither
    under $LLAMA_ZOO_DATA nor on a hub this process can reach (an offline hub fails at once; a copy
    in the hub's cache still loads, as it would after the model)."""
    dataset = dataset or default
    parts = [part for part, _ in mixtures[dataset]] if mixtures and dataset in mixtures else [dataset]
    for part in parts:
        if part in named and find_file(named[part].files) is None and (named[part].hub is None or hub_offline()):
            _from_hub(named[part], revision)


def load_labelled(dataset: str | None, revision: str | None, default: str, *, named: dict[str, Named] = NAMED,
                  mixtures: dict[str, Mixture] | None = None) -> LabelledSet:
    """A named set (``default`` when none is given), a named mixture of sets, or a local file."""
    dataset = dataset or default
    if dataset in named:
        return load_named(named[dataset], revision)
    if mixtures and dataset in mixtures:
        if revision:
            raise DatasetError(f"--dataset-revision pins one hub dataset; {dataset} mixes several")
        parts = [[row for row in load_named(named[part], revision).rows if keep is None or row.label == keep]
                 for part, keep in mixtures[dataset]]
        # interleaved, so that --limit N takes some of every part
        rows = [part[i] for i in range(max(map(len, parts))) for part in parts if i < len(part)]
        return LabelledSet(dataset, None, rows)
    path = Path(dataset).expanduser()
    if path.is_file():
        for n in named.values():  # a published file keeps its name, so its runs line up with the hub's
            if path.name in n.files:
                return LabelledSet(n.name, None, n.rows(read_records(path), str(path)))
        rows = labelled_rows(read_records(path), str(path))
        if not rows:
            raise DatasetError(f"{path}: no rows")
        return LabelledSet(str(path.resolve()), None, rows)
    choices = ", ".join([*named, *(mixtures or {})])
    raise DatasetError(f"no dataset {dataset!r}: give {choices}, or a .csv/.jsonl file with prompt and label columns")
