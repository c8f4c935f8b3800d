"""Windows sharing their model input are read from one pass, and inputs beginning with the same
context continue from its keys and values: the hosts cover every window with the fewest inputs, the
families group the hosts by context, and the transformers runner gives each window what it gives it
alone."""

from __future__ import annotations

import random
import warnings

import pytest
import torch

from llama_zoo.backends.base import TokenWindow
from llama_zoo.backends.shared_inputs import families, hosts
from tests.backends.test_batched_generation import shadow_runner


def choices(rng: random.Random) -> list[TokenWindow]:
    """Multiple-choice windows as lm-eval's tasks make them: a question, then choices of one to
    three tokens, several beginning alike (one a prefix of another), some questions asked twice."""
    out = []
    for _ in range(12):
        context = tuple(rng.randrange(1, 400) for _ in range(rng.randrange(3, 12)))
        first = rng.randrange(1, 400)
        for _ in range(4):
            out.append(TokenWindow(context, (first, *(rng.randrange(1, 400) for _ in range(rng.randrange(0, 3))))))
        out.append(TokenWindow(context, (rng.randrange(1, 400),)))
    return out + out[:5]


def test_hosts_cover_every_window_once_with_inputs_that_hold_its_own():
    windows = choices(random.Random(0))
    found = hosts(windows)
    read = sorted(r.window for h in found for r in h.reads)
    assert read == list(range(len(windows)))
    for h in found:
        for r in h.reads:
            w = windows[r.window]
            own = tuple(w.context) + tuple(w.targets[:-1])
            assert h.ids[:len(own)] == own and r.first == len(w.context) - 1 and r.targets == tuple(w.targets)
    inputs = {tuple(w.context) + tuple(w.targets[:-1]) for w in windows}
    # no host is a prefix of another (each prefix went to a longer one), and none is left out
    assert not any(a != b and b[:len(a)] == a for a in (h.ids for h in found) for b in (h.ids for h in found))
    assert all(any(h.ids[:len(i)] == i for h in found) for i in inputs)
    assert len(found) < len(windows) / 2


def test_families_group_the_hosts_that_begin_with_one_context():
    windows = choices(random.Random(0))
    found = hosts(windows)
    shared, alone = families(found)
    members = [h for f in shared for h in f.hosts] + alone
    assert sorted(members, key=lambda h: h.ids) == sorted(found, key=lambda h: h.ids)  # each host once
    assert shared and all(len(f.hosts) > 1 for f in shared)
    for family in shared:
        for host in family.hosts:
            assert host.ids[:len(family.trunk)] == family.trunk and len(host.ids) > len(family.trunk)
            # every window predicts its first target from the trunk's last token or later
            assert min(r.first for r in host.reads) == len(family.trunk) - 1
    contexts = {tuple(windows[r.window].context) for f in shared for h in f.hosts for r in h.reads}
    assert not contexts & {tuple(windows[r.window].context) for h in alone for r in h.reads}


@pytest.mark.slow
def test_a_window_read_from_a_shared_pass_scores_as_it_does_alone(catalog):
    torch.set_num_threads(1)
    runner = shadow_runner(catalog, "llama-2-7b")
    windows = choices(random.Random(1))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        together = runner.loglikelihood_rolling(windows)
    # a deprecated argument warns on stderr, which breaks the CLI's one-line errors
    assert not [str(w.message) for w in seen if "deprecated" in str(w.message)]
    alone = [runner.loglikelihood_rolling([w])[0] for w in windows]
    assert [len(x) for x in together] == [len(w.targets) for w in windows]
    assert [x for row in together for x in row] == pytest.approx([x for row in alone for x in row], abs=1e-5)
