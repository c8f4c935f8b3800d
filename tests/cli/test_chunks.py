"""The loop's runner calls (orchestration/loop.py ``Chunks``): they grow while calls are quick, never
past their cap or a suite's items per chunk, and every item is answered once, in order."""

from __future__ import annotations

from llama_zoo.orchestration import loop
from llama_zoo.orchestration.loop import Chunks
from llama_zoo.suites.core.base import Item


def items(n: int, requests_each: int = 4) -> list[Item]:
    return [Item(i, tuple(range(requests_each)), None) for i in range(n)]


def sizes(chunks: Chunks, seconds: float) -> list[int]:
    out = []
    for chunk in chunks:
        out.append(sum(len(item.requests) for item in chunk))
        chunks.took(seconds)
    return out


def test_quick_calls_double_the_requests_up_to_the_cap():
    todo = items(1000)
    chunks = Chunks(todo, None, 64)
    got = sizes(chunks, seconds=0.1)
    assert got[:5] == [64, 128, 256, 512, 1024] and max(got) == 64 * loop.CHUNK_GROWTH
    assert [item.index for chunk in Chunks(todo, None, 64) for item in chunk] == list(range(1000))


def test_slow_calls_keep_the_backends_number():
    assert sizes(Chunks(items(96), None, 64), seconds=loop.CHUNK_SECONDS) == [64] * 6


def test_slow_calls_halve_the_requests_back_to_the_backends_number():
    chunks = Chunks(items(2000), None, 64)
    got = []
    for k, chunk in enumerate(chunks):
        got.append(sum(len(item.requests) for item in chunk))
        chunks.took(0.1 if k < 3 else loop.CHUNK_SECONDS * 3)
    assert got[:7] == [64, 128, 256, 512, 256, 128, 64] and set(got[7:-1]) == {64}


def test_a_suites_items_per_chunk_holds_whatever_the_speed():
    chunks = Chunks(items(10), 1, 64)
    assert [len(chunk) for chunk in chunks if chunks.took(0.0) is None] == [1] * 10
