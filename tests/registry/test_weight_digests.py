"""Weight digests remembered per machine (llama_zoo/machine_cache.py): the same digest as reading
the files, the files not read again while unchanged, read again after any rewrite."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

from llama_zoo import machine_cache
from llama_zoo.registry import checkpoint
from llama_zoo.registry.checkpoint import hash_file_list


def plain_sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def weights(tmp_path, monkeypatch) -> list[Path]:
    monkeypatch.setenv("LLAMA_ZOO_CACHE", str(tmp_path / "cache"))
    files = [tmp_path / "model-00001.safetensors", tmp_path / "config.json"]
    files[0].write_bytes(os.urandom(3 << 20))
    files[1].write_text('{"model_type": "llama"}')
    return files


def unreadable(monkeypatch) -> None:
    """From here on, reading a file in checkpoint.py fails."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"read again: {args[0]}")

    monkeypatch.setattr(checkpoint, "open", refuse, raising=False)


def test_a_settled_checkpoint_is_read_once(weights, monkeypatch, tmp_path):
    monkeypatch.setattr(machine_cache, "SETTLED_S", 0.0)
    first = hash_file_list(weights)
    assert first == plain_sha256(weights)
    unreadable(monkeypatch)
    assert hash_file_list(weights) == first
    # another order is another digest, and is computed; so is the same file under another name
    with pytest.raises(AssertionError, match="read again"):
        hash_file_list(weights[::-1])
    link = tmp_path / "latest.safetensors"
    link.symlink_to(weights[0])
    with pytest.raises(AssertionError, match="read again"):
        hash_file_list([link, weights[1]])


def test_bytes_rewritten_in_place_with_the_old_size_and_time_are_read_again(weights, monkeypatch):
    monkeypatch.setattr(machine_cache, "SETTLED_S", 0.0)
    first = hash_file_list(weights)
    before = os.stat(weights[0])
    time.sleep(0.05)  # past the file system's timestamp tick
    with open(weights[0], "r+b") as f:  # same inode, same size
        f.seek(1000)
        f.write(b"\x00" * 16)
    os.utime(weights[0], ns=(before.st_atime_ns, before.st_mtime_ns))  # the old modification time back
    assert os.stat(weights[0]).st_size == before.st_size and os.stat(weights[0]).st_mtime_ns == before.st_mtime_ns
    assert hash_file_list(weights) == plain_sha256(weights) != first


def test_a_file_changed_just_now_is_hashed_but_not_remembered(weights, tmp_path):
    # written an instant ago: a rewrite within the same timestamp tick would keep every field
    weights[1].write_text('{"model_type": "llama", "just": "now"}')
    assert hash_file_list(weights[1:]) == plain_sha256(weights[1:])
    assert not (tmp_path / "cache" / "file-digests.json").exists()
    with open(weights[1], "r+") as f:
        f.write('{"model_type": "LLAMA"}')
    assert hash_file_list(weights[1:]) == plain_sha256(weights[1:])


def test_the_cache_keeps_the_newest_digests(weights, monkeypatch, tmp_path):
    monkeypatch.setattr(machine_cache, "SETTLED_S", 0.0)
    monkeypatch.setattr(machine_cache, "DIGESTS_KEPT", 2)
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name)
        hash_file_list([tmp_path / name])
    kept = json.loads((tmp_path / "cache" / "file-digests.json").read_text())
    assert sorted(kept.values()) == sorted(plain_sha256([tmp_path / n]) for n in ("b", "c"))


ORDINARY = """
import json, sys
from pathlib import Path
from llama_zoo import machine_cache
from llama_zoo.registry.checkpoint import hash_file_list
machine_cache.SETTLED_S = 0.0
print(json.dumps([hash_file_list([Path(sys.argv[1])]) for _ in range(2)]))
"""


def test_an_ordinary_user_hashes_with_a_cache_it_cannot_write_and_one_it_can(ordinary_user, tmp_path):
    if ordinary_user.name is None:
        pytest.skip("needs root to make a throwaway user and a directory that user cannot write")
    weights = ordinary_user.home / "w.safetensors"
    weights.write_bytes(os.urandom(1 << 20))
    ordinary_user.owns(weights)
    expected = plain_sha256([weights])
    locked = ordinary_user.home / "root-only"
    locked.mkdir(mode=0o755)  # root's, in a directory the user can enter: the user cannot write it
    own = ordinary_user.home / "cache"
    for cache in (locked, own):
        done = ordinary_user.run([sys.executable, "-c", ORDINARY, str(weights)], env={"LLAMA_ZOO_CACHE": str(cache)})
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [expected, expected]
    assert list(locked.iterdir()) == []
    assert expected in json.loads((own / "file-digests.json").read_text()).values()
