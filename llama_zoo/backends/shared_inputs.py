"""Windows that share their model input are read from one forward pass.

A window's model input is ``context + targets[:-1]``, and a causal model's prediction at a position
depends on the tokens up to it only. So a window whose input is a prefix of another's (a question's
choices that differ in their last token only, "A"/"B"/"C"/"D" after the same question, the shorter
of two numbers that begin alike) is read from the longer input's pass at its own positions, with its
own targets. lm-eval shares the same way where inputs are equal (its ``group_by="contexts"``); a
prefix is shared here too. The log-likelihoods are those of each window alone.

Inputs that only begin alike (a question's choices of several tokens each) are grouped by the
context they begin with (``families``): a backend that can keep keys and values reads the context
once and continues each choice from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from llama_zoo.backends.base import TokenWindow


@dataclass(frozen=True)
class Read:
    """One window read from a host's pass: its index, the position predicting its first target,
    and its targets."""

    window: int
    first: int
    targets: tuple[int, ...]


@dataclass(frozen=True)
class Host:
    """An input the model reads once, and every window read from it."""

    ids: tuple[int, ...]
    reads: tuple[Read, ...]


def hosts(windows: Sequence[TokenWindow]) -> list[Host]:
    """The fewest inputs that hold every window's, in lexicographic order (consecutive hosts share
    the longest prefixes), each with the windows it answers."""
    inputs = [tuple(w.context) + tuple(w.targets[:-1]) for w in windows]
    order = sorted(set(inputs))
    # in lexicographic order a sequence that is a prefix of any other is a prefix of the next one
    host_of: dict[tuple[int, ...], tuple[int, ...]] = {}
    for k in range(len(order) - 1, -1, -1):
        seq = order[k]
        after = order[k + 1] if k + 1 < len(order) else None
        host_of[seq] = host_of[after] if after is not None and after[:len(seq)] == seq else seq
    reads: dict[tuple[int, ...], list[Read]] = {}
    for i, (w, seq) in enumerate(zip(windows, inputs)):
        reads.setdefault(host_of[seq], []).append(Read(i, len(w.context) - 1, tuple(w.targets)))
    return [Host(seq, tuple(reads[seq])) for seq in order if seq in reads]


@dataclass(frozen=True)
class Family:
    """Hosts that begin with the same context (the trunk): every window of each predicts its first
    target from the trunk's last token or later."""

    trunk: tuple[int, ...]
    hosts: tuple[Host, ...]


def families(all_hosts: Sequence[Host]) -> tuple[list[Family], list[Host]]:
    """The hosts grouped by their shortest window context, and those left alone (a context no
    other host begins with: a rolling document's windows, a one-token choice's question)."""
    by_trunk: dict[tuple[int, ...], list[Host]] = {}
    for host in all_hosts:
        by_trunk.setdefault(host.ids[:min(r.first for r in host.reads) + 1], []).append(host)
    shared, alone = [], []
    for trunk, members in by_trunk.items():
        # a member no longer than the trunk would have been read from another's pass (hosts())
        if len(members) > 1 and all(len(h.ids) > len(trunk) for h in members):
            shared.append(Family(trunk, tuple(members)))
        else:
            alone += members
    return shared, alone
