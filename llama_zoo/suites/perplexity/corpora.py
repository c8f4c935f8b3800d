"""Text collections for the perplexity suite: WikiText-2 from the hub, any local text, and a
built-in corpus that exists on every machine (the Python standard library's module docstrings)."""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import platform
from dataclasses import dataclass
from pathlib import Path

from llama_zoo.errors import LlamaZooError

# Pure-Python standard-library modules with long module docstrings: English prose, offline everywhere.
STDLIB_MODULES = (
    "argparse", "ast", "base64", "bisect", "calendar", "cmd", "codecs", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "doctest", "email",
    "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip", "heapq", "hmac", "imaplib",
    "inspect", "ipaddress", "json", "logging", "mailbox", "netrc", "numbers", "optparse", "pathlib",
    "pickle", "pickletools", "platform", "poplib", "pprint", "queue", "quopri", "random", "re", "sched",
    "secrets", "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "statistics",
    "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace",
    "traceback", "typing", "unittest", "urllib", "uuid", "warnings", "weakref", "webbrowser", "zipfile",
)
BUILTIN = "stdlib-docs"
WIKITEXT = "wikitext-2"


class DatasetError(LlamaZooError):
    pass


@dataclass(frozen=True)
class Documents:
    name: str
    revision: str | None
    texts: list[str]

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for text in self.texts:
            digest.update(hashlib.sha256(text.encode()).digest())
        return digest.hexdigest()


def stdlib_docs() -> Documents:
    return Documents(BUILTIN, f"python-{platform.python_version()}", list(_stdlib_docstrings()))


@functools.lru_cache(maxsize=1)
def _stdlib_docstrings() -> tuple[str, ...]:
    # parsing ~75 modules costs about 2 s of CPU; the files belong to this interpreter and do not change under it
    texts = []
    for name in STDLIB_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8")))
        if doc and len(doc) >= 300:
            texts.append(doc)
    return tuple(texts)


def wikitext2(revision: str | None = None) -> Documents:
    """WikiText-2 raw test, one document per article (lm-eval's document-level version)."""
    try:
        import datasets
    except ImportError:
        raise DatasetError("WikiText-2 needs the datasets package: pip install datasets") from None
    try:
        data = datasets.load_dataset("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", split="test",
                                     revision=revision)
    except Exception as exc:  # the hub is unreachable, or the name or revision is wrong  # noqa: BLE001
        raise DatasetError(f"cannot load WikiText-2 from the hub ({type(exc).__name__}); use --dataset "
                           f"{BUILTIN} or --dataset PATH") from None
    return Documents(WIKITEXT, revision or getattr(data, "_fingerprint", None), [row["page"] for row in data])


def _read_file(path: Path) -> list[str]:
    if path.suffix == ".jsonl":
        texts = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DatasetError(f"{path}:{n}: not a JSON line") from None
            text = row.get("text", row.get("page")) if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise DatasetError(f"{path}:{n}: expected an object with a 'text' field")
            texts.append(text)
        return texts
    return [path.read_text(encoding="utf-8")]


def local(path: Path) -> Documents:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl", ".md") and p.is_file())
        if not files:
            raise DatasetError(f"{path}: no .txt, .md or .jsonl files")
        texts = [t for f in files for t in _read_file(f)]
    else:
        texts = _read_file(path)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DatasetError(f"{path}: no text")
    return Documents(str(path.resolve()), None, texts)


def load_documents(dataset: str | None, revision: str | None = None) -> Documents:
    if dataset in (None, BUILTIN):
        return stdlib_docs()
    if dataset in (WIKITEXT, "wikitext", "wikitext2"):
        return wikitext2(revision)
    path = Path(dataset).expanduser()
    if path.exists():
        return local(path)
    raise DatasetError(f"no dataset {dataset!r}: give {BUILTIN}, {WIKITEXT}, or a path to a .txt/.jsonl file or directory")
