"""Visual question sets: the built-in synthetic generator, and a local directory anyone can fill.

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
from llama_zoo.evals.vision.synthetic import VisualQuestion, generate

METRICS = ("vqa", "anls", "relaxed", "mcq")
SYNTHETIC = "synthetic"
SYNTHETIC_SIZE = 300  # items of the built-in set; --limit takes the first N


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


def load_visual(dataset: str | None, limit: int | None = None, seed: int = 0) -> VisualSet:
    if dataset in (None, SYNTHETIC):
        return synthetic(limit, seed)
    path = Path(dataset).expanduser()
    if path.is_dir():
        return local(path, limit)
    raise DatasetError(f"no dataset {dataset!r}: give {SYNTHETIC}, or a directory holding questions.jsonl and its images")
