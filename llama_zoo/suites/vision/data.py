"""Visual question sets: the built-in synthetic generator, easy-vqa (a PyPI package with its
images inside), the published benchmarks from the Hugging Face hub, and a local directory anyone
can fill.

A local set is a directory with ``questions.jsonl``, one question a line: ``id``, ``image`` (a
path relative to the directory), ``question``, ``answers`` (a list of strings: ten for VQA
accuracy as VQAv2's annotators gave them, one or more otherwise), ``metric`` (``vqa``, ``anls``,
``relaxed`` or ``mcq``) and, for ``mcq``, ``options`` (the option texts, lettered A, B, ... in
order; the answer is a letter or an option's text).
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.local_data import local_dataset
from llama_zoo.suites.vision.metrics import CHOICE_LETTERS
from llama_zoo.suites.vision.synthetic import VisualQuestion, generate

METRICS = ("vqa", "anls", "relaxed", "mcq")
SYNTHETIC = "synthetic"
SYNTHETIC_SIZE = 300  # items of the built-in set; --limit takes the first N
EASY_VQA = "easy-vqa"


@dataclass(frozen=True)
class HubSet:
    repo: str
    config: str | None
    split: str
    metric: str


# The sets lmms-eval scores Llama 3.2 Vision's benchmarks on (validation/test splits with answers)
HUB_SETS = {
    "vqav2": HubSet("lmms-lab/VQAv2", None, "validation", "vqa"),
    "docvqa": HubSet("lmms-lab/DocVQA", "DocVQA", "validation", "anls"),
    "chartqa": HubSet("lmms-lab/ChartQA", None, "test", "relaxed"),
    "ai2d": HubSet("lmms-lab/ai2d", None, "test", "mcq"),
    "mmmu": HubSet("lmms-lab/MMMU", None, "validation", "mcq"),
}


class DatasetError(LlamaZooError):
    pass


@dataclass(frozen=True)
class VisualSet:
    name: str
    revision: str | None
    items: list[VisualQuestion]
    image_digests: tuple[str, ...] = ()  # local files: what the images hold, part of the set's identity

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for q in self.items:
            digest.update(json.dumps([q.id, q.question, list(q.answers), q.metric, list(q.options), list(q.image.size)],
                                     ensure_ascii=False).encode())
        for d in self.image_digests:
            digest.update(d.encode())
        return digest.hexdigest()


def synthetic(limit: int | None = None, seed: int = 0) -> VisualSet:
    """The generated set; its answers do not depend on the drawing libraries, its pixels may, so
    their versions are the set's revision."""
    from importlib.metadata import version

    n = min(limit, SYNTHETIC_SIZE) if limit else SYNTHETIC_SIZE
    revision = f"v1 seed={seed} matplotlib-{version('matplotlib')} pillow-{version('pillow')} python-{platform.python_version()}"
    return VisualSet(SYNTHETIC, revision, list(generate(n, seed)))


def local(path: Path, limit: int | None = None) -> VisualSet:
    questions = path / "questions.jsonl"
    if not questions.is_file():
        raise DatasetError(f"{path}: no questions.jsonl (a visual question set is a directory holding questions.jsonl and its images)")
    items, digests = [], []
    lines = [line for line in questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    for n, line in enumerate(lines[:limit] if limit else lines, 1):
        where = f"{questions}:{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise DatasetError(f"{where}: not a JSON line") from None
        items.append(_question(rec, path, where))
        digests.append(hashlib.sha256((path / rec["image"]).read_bytes()).hexdigest())
    if not items:
        raise DatasetError(f"{questions}: no questions")
    ids = [q.id for q in items]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{questions}: ids repeat")
    return VisualSet(str(path.resolve()), None, items, tuple(digests))


def _question(rec: Any, root: Path, where: str) -> VisualQuestion:
    from PIL import Image

    if not isinstance(rec, dict):
        raise DatasetError(f"{where}: expected an object")
    for key in ("id", "image", "question", "answers", "metric"):
        if key not in rec:
            raise DatasetError(f"{where}: no {key!r}")
    if rec["metric"] not in METRICS:
        raise DatasetError(f"{where}: unknown metric {rec['metric']!r} (one of {', '.join(METRICS)})")
    answers = rec["answers"]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise DatasetError(f"{where}: answers must be a non-empty list of strings")
    options = rec.get("options") or []
    if rec["metric"] == "mcq" and (not isinstance(options, list) or not 2 <= len(options) <= 26):
        raise DatasetError(f"{where}: a multiple-choice question needs a list of 2 to 26 options")
    image_path = root / rec["image"]
    if not image_path.is_file():
        raise DatasetError(f"{where}: image {rec['image']!r} is missing")
    try:
        image = Image.open(image_path).convert("RGB")
    except OSError:
        raise DatasetError(f"{where}: {rec['image']!r} is not an image") from None
    return VisualQuestion(str(rec["id"]), image, rec["question"], tuple(answers), rec["metric"], tuple(map(str, options)))


def easy_vqa(limit: int | None = None) -> VisualSet:
    """easy-vqa's test split (1,000 64x64 images, 9,673 questions about one shape's kind and colour,
    each with one answer): scored by VQA accuracy with that answer as all ten annotators', which is
    exact match after VQAv2's normalisation."""
    try:
        import easy_vqa as ev
    except ImportError:
        raise DatasetError("--dataset easy-vqa needs the easy-vqa package: pip install 'llama-zoo[vision]'") from None
    from importlib.metadata import version
    from PIL import Image

    texts, answers, image_ids = ev.get_test_questions()
    paths = ev.get_test_image_paths()  # ids restart at 0 in each split: the test split's own paths
    n = min(limit, len(texts)) if limit else len(texts)
    items = []
    for i in range(n):
        with Image.open(paths[image_ids[i]]) as image:
            items.append(VisualQuestion(f"easy-vqa-test-{i}", image.convert("RGB"), texts[i], (answers[i],) * 10, "vqa",
                                        about={"image_id": image_ids[i]}))
    return VisualSet(EASY_VQA, f"easy-vqa-{version('easy-vqa')} test", items)


def hub(name: str, limit: int | None = None) -> VisualSet:
    """A published benchmark from the Hugging Face hub, in the layout lmms-eval reads (not reachable
    from the machines this project is tested on: written from the sets' published fields)."""
    spec = HUB_SETS[name]
    try:
        from datasets import load_dataset

        split = f"{spec.split}[:{limit}]" if limit else spec.split
        local = local_dataset(spec.repo)  # a `huggingface-cli download --local-dir` snapshot under $LLAMA_ZOO_DATA
        rows = load_dataset(str(local) if local else spec.repo, spec.config, split=split)
    except ImportError:
        raise DatasetError(f"--dataset {name} needs the datasets package: pip install 'llama-zoo[hf]'") from None
    except Exception as exc:  # the hub's errors have no common base class: offline, gated, missing
        raise DatasetError(f"cannot load {spec.repo} from the hub: {' '.join(str(exc).split())[:200]}") from None
    items = [q for i, row in enumerate(rows) if (q := _hub_question(name, spec, i, row)) is not None]
    fingerprint = getattr(rows, "_fingerprint", None)
    return VisualSet(name, f"{spec.repo} {spec.split} {fingerprint}", items)


def _hub_question(name: str, spec: HubSet, i: int, row: dict[str, Any]) -> VisualQuestion | None:
    """One row as a question; None for rows the suite cannot ask (MMMU's open questions and
    questions over several images)."""
    image = row.get("image")
    if name == "vqav2":
        answers = tuple(a["answer"] for a in row["answers"])
        return VisualQuestion(str(row["question_id"]), image, row["question"], answers, spec.metric, benchmark=name)
    if name == "docvqa":
        return VisualQuestion(str(row["questionId"]), image, row["question"], tuple(row["answers"]), spec.metric,
                              benchmark=name)
    if name == "chartqa":
        return VisualQuestion(f"chartqa-{i}", image, row["question"], (str(row["answer"]),), spec.metric, benchmark=name)
    if name == "ai2d":  # the answer is the option's index from 0
        options = tuple(map(str, row["options"]))
        letter = CHOICE_LETTERS[int(row["answer"])]
        return VisualQuestion(f"ai2d-{i}", image, row["question"], (letter,), spec.metric, options, benchmark=name)
    # MMMU: options are a Python list written as a string; one image, multiple choice only
    import ast

    if row.get("question_type") != "multiple-choice" or row.get("image_2") is not None:
        return None
    options = tuple(map(str, ast.literal_eval(row["options"])))
    question = row["question"].replace("<image 1>", "the image")
    return VisualQuestion(str(row["id"]), row["image_1"], question, (row["answer"],), spec.metric, options,
                          benchmark=name)


def image_of(dataset: str | None, qid: str) -> Any | None:
    """The image of question ``qid`` of a set a run scored, found again without loading the set:
    a synthetic item is drawn again from its id, easy-vqa's read from the package, a local set's
    from its directory; None where it cannot be had here (a hub set offline, a directory gone)."""
    import re

    from PIL import Image

    if dataset in (None, SYNTHETIC) and (m := re.fullmatch(r"synthetic-(\d+)-(\d+)", qid)):
        from llama_zoo.suites.vision.synthetic import item

        return item(int(m.group(2)), int(m.group(1))).image
    if dataset == EASY_VQA and (m := re.fullmatch(r"easy-vqa-test-(\d+)", qid)):
        try:
            import easy_vqa as ev
        except ImportError:
            return None
        _, _, image_ids = ev.get_test_questions()
        i = int(m.group(1))
        return Image.open(ev.get_test_image_paths()[image_ids[i]]).convert("RGB") if i < len(image_ids) else None
    questions = Path(dataset).expanduser() / "questions.jsonl" if dataset else None
    if questions is not None and questions.is_file():
        for line in questions.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line) if line.strip() else {}
            if isinstance(rec, dict) and str(rec.get("id")) == qid and (questions.parent / str(rec.get("image"))).is_file():
                return Image.open(questions.parent / rec["image"]).convert("RGB")
    return None


def images_kept(dataset: str | None) -> bool:
    """Whether ``image_of`` can find a set's images on this machine."""
    if dataset in (None, SYNTHETIC, EASY_VQA):
        return True
    return bool(dataset) and (Path(dataset).expanduser() / "questions.jsonl").is_file()


class StoredImages:
    """The vqa suite's ``SampleImages``: what ``image_of`` and ``images_kept`` find."""

    kept = staticmethod(images_kept)
    of = staticmethod(image_of)


def load_visual(dataset: str | None, limit: int | None = None, seed: int = 0) -> VisualSet:
    if dataset in (None, SYNTHETIC):
        return synthetic(limit, seed)
    if dataset == EASY_VQA:
        return easy_vqa(limit)
    if dataset in HUB_SETS:
        return hub(dataset, limit)
    path = Path(dataset).expanduser()
    if path.is_dir():
        return local(path, limit)
    raise DatasetError(f"no dataset {dataset!r}: give {SYNTHETIC}, {EASY_VQA}, one of {', '.join(HUB_SETS)} (from "
                       "the hub), or a directory holding questions.jsonl and its images")
