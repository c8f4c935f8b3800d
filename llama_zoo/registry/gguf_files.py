"""Reading a GGUF file once. transformers parses a GGUF file's whole header (the vocabulary, string by
string) once for the config, once for the tokenizer and once for the weights, and rebuilds gguf's
tensor-name table for every module of the model: on a CPU that was 30 s of the 35 s a 135M model
took to load. The last file parsed is kept (describing a file, then loading its tokenizer and
its weights, parse it once), and inside ``read_once()`` each name table is built once.

Both are read-only objects. transformers imports ``GGUFReader`` and ``get_tensor_name_map`` from
``gguf`` when it is called, which is what lets this swap them; should that change, loading is as
slow as before, never different.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from typing import Iterator

_last: tuple[tuple[str, int, int], object] | None = None  # (path, size, mtime) -> its GGUFReader
_originals: dict[str, object] = {}  # gguf's own GGUFReader and get_tensor_name_map
_depth = 0  # read_once blocks open (a tokenizer may load inside a model's load)


def _original(name: str):
    import gguf

    if not _originals:  # taken before any swap
        _originals.update(GGUFReader=gguf.GGUFReader, get_tensor_name_map=gguf.get_tensor_name_map)
    return _originals[name]


def reader(path: str):
    """``gguf.GGUFReader(path)``, parsed again only when another file (or a changed one) is read."""
    global _last
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if _last is None or _last[0] != key:
        _last = None  # the previous file's maps go first
        _last = (key, _original("GGUFReader")(path))
    return _last[1]


@contextlib.contextmanager
def read_once() -> Iterator[None]:
    """Within the block, transformers' GGUF loading reads each file once, builds each name table once
    and draws no bar of its own."""
    import gguf

    global _depth
    reader_cls, name_map = _original("GGUFReader"), _original("get_tensor_name_map")
    # its per-tensor bar ("Converting and de-quantizing GGUF tensors") would cut through the CLI's own
    # progress; tqdm reads TQDM_DISABLE only when it is imported, so the module's tqdm is swapped
    converter = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    bar = getattr(converter, "tqdm", None)
    if _depth == 0:
        gguf.GGUFReader = lambda path, mode="r": reader(str(path)) if mode == "r" else reader_cls(path, mode)
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(name_map)
        if bar is not None:
            converter.tqdm = functools.partial(bar, disable=True)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gguf.GGUFReader, gguf.get_tensor_name_map = reader_cls, name_map
            if bar is not None:
                converter.tqdm = bar
