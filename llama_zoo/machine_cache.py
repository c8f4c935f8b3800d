"""What llama-zoo keeps between processes on this machine, under ``$LLAMA_ZOO_CACHE`` (else the
user's cache directory). Anything here may be deleted at any time: it is computed again.

Here too: the SHA-256 digests of weight files, remembered by what the file system says of them. A
checkpoint's id and its runs' identity hash its weights; an 8B checkpoint is 16 GB, read in full at
every run without this. A digest is reused only while every file keeps its device, inode, size,
modification time and change time: rewriting a file's bytes changes its change time (``ctime``),
which no program can set back, so a file rewritten in place, even with its old size and a restored
modification time, is read again (git's index trusts the same fields). What this cannot see: a
network file system's attribute cache (a file rewritten on another host can show its old times
here for up to its ``acregmax``), and a cache directory others may write (``$LLAMA_ZOO_CACHE``
pointed at a shared one trusts their entries); on such storage, delete ``file-digests.json`` or
give each user a private cache. File times tick coarsely
(milliseconds), so a file changed in the last ``SETTLED_S`` seconds is hashed but not remembered: a
second write within the same tick would leave every field as it was (git's "racy" entries).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

DIGESTS_KEPT = 256  # checkpoints remembered; the oldest is forgotten first
SETTLED_S = 2.0


def cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("LLAMA_ZOO_CACHE") or user_cache_dir("llama-zoo"))


def remembered_digest(files: Sequence[Path], compute: Callable[[Sequence[Path]], str]) -> str:
    """``compute(files)``, or what it gave for the same files unchanged since."""
    started = time.time_ns()  # before the files are examined: a write after it counts as recent
    try:
        key, newest = _stat_key(files)
    except OSError:
        return compute(files)  # a file that cannot be examined is read (and fails) as it would be
    path = cache_root() / "file-digests.json"
    known = _read(path)
    if isinstance(known.get(key), str):
        return known[key]
    digest = compute(files)
    if started - newest < SETTLED_S * 1e9:
        return digest
    known = _read(path)  # another process may have added digests meanwhile
    known.pop(key, None)
    known[key] = digest  # insertion order is age: the newest last
    write_atomically(path, json.dumps(dict(list(known.items())[-DIGESTS_KEPT:])).encode())
    return digest


def _stat_key(files: Sequence[Path]) -> tuple[str, int]:
    """The files' key, and the latest time any of them changed (ns)."""
    lines, newest = [], 0
    for file in files:
        s = os.stat(file)
        # the name as given too: the digest hashes it (a link and its target are two digests)
        lines.append(f"{Path(file).name} {os.path.realpath(file)} {s.st_dev} {s.st_ino} {s.st_size} {s.st_mtime_ns} "
                     f"{s.st_ctime_ns}")
        newest = max(newest, s.st_mtime_ns, s.st_ctime_ns)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest(), newest


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` as ``path``, whole or not at all: a process reading it never sees half a file, and a
    cache that cannot be written (a read-only home) only costs time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(scratch, path)
    except OSError:
        Path(scratch).unlink(missing_ok=True)
