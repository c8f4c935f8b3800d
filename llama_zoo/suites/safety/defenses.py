"""Defences in the loop: what an attacked input (a user's message, a tool's output) passes through
before the model sees it. ``--defense`` names one:

- a Prompt Guard 1 or 2 model of the registry (``prompt-guard-2-86m``): the ``prompt-guard``
  suite's scores, the attack score of the most suspicious 512-token chunk; an input scoring
  ``--defense-threshold`` or more is blocked;
- ``llamafirewall:SCANNER[,SCANNER...]``: LlamaFirewall's own scanners (``regex``,
  ``hidden_ascii``, ``code_shield``) on the text in the role it arrives in, each made once and
  their results combined as ``LlamaFirewall.scan`` combines them; an input is blocked where that
  decision is not "allow". LlamaFirewall's own Prompt Guard scanner is not offered: it loads its
  model per message and may ask to log in to the hub; give the Prompt Guard model instead.

A blocked input counts as a refusal of that case. The defence's identity (the model, its weights
and threshold, or the scanners and LlamaFirewall's version) is part of the run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option

FIREWALL = "llamafirewall:"
FIREWALL_SCANNERS = ("regex", "hidden_ascii", "code_shield")
FIREWALL_INSTALL = "pip install 'llama-zoo[agents]' (llamafirewall)"

DEFENSE_OPTIONS = (
    Option("defense", None, "Screen each attacked input before the model sees it: a Prompt Guard model (e.g. "
           "prompt-guard-2-86m) or LlamaFirewall's scanners (llamafirewall:regex,hidden_ascii; also code_shield); "
           "a blocked input counts as a refusal.", type=str),
    Option("defense_threshold", 0.5, "Block an input whose Prompt Guard attack score is at least this.", type=float,
           minimum=0.0, maximum=1.0),
    Option("defense_weights", None, "A Prompt Guard defence's weights: hub, shadow or a checkpoint directory (default: "
           "shadow for a shadow run, else hub).", type=str),
)


@dataclass
class Screen:
    """``verdicts(texts, role)``: each text's attack score and whether it is blocked, ``role``
    being where it comes from ("user" or "tool"); ``identity`` names the defence."""

    identity: dict[str, Any]
    verdicts: Callable[[Sequence[str], str], list[tuple[float, bool]]] = field(repr=False)


def shown(name: str, identity: dict[str, Any]) -> str:
    """A judge's or defence's name as a report's setup column shows it: weights that measure
    nothing (a shadow's, random ones) say so, even beside a real model's run."""
    kind = identity.get("weights_source")
    return f"{name} ({kind} weights)" if kind in ("shadow", "random") else name


def open_defense(ctx: Any) -> Screen | None:
    """The run's defence, or None; a name that is neither a prompt-attack classifier nor
    LlamaFirewall's scanners is refused in one line."""
    name = ctx.options.get("defense")
    if not name:
        return None
    if name.startswith(FIREWALL):
        return _firewall(name[len(FIREWALL):])
    return _prompt_guard(ctx)


def _prompt_guard(ctx: Any) -> Screen:
    from llama_zoo.suites.safety.prompt_guard import attack_scores, chunk_requests, labels_of

    o = ctx.options
    model = ctx.open_model(o["defense"], o.get("defense_weights"))
    safety = model.spec.capabilities.safety
    if safety is None or safety.role != "prompt-attack" or model.spec.architecture is None:
        raise LlamaZooError(f"--defense {model.spec.id} is not a classifier of prompt attacks: give a Prompt Guard "
                            f"model (e.g. prompt-guard-2-86m) or {FIREWALL}{','.join(FIREWALL_SCANNERS[:2])}")
    labels = labels_of(model.spec)
    positions = model.spec.max_context or 512
    threshold = o["defense_threshold"]

    def verdicts(texts: Sequence[str], role: str) -> list[tuple[float, bool]]:
        chunked = [chunk_requests(model.tokenizer, text, positions) for text in texts]
        answers = iter(model.runner.classify([request for chunks in chunked for request in chunks]))
        scores = [max(attack_scores(next(answers), labels)["score"] for _ in chunks) for chunks in chunked]
        return [(s, s >= threshold) for s in scores]

    return Screen({"kind": "prompt-guard", **model.identity, "threshold": threshold}, verdicts)


def _firewall(spec: str) -> Screen:
    scanners = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in scanners if s not in FIREWALL_SCANNERS]
    if "prompt_guard" in unknown:
        raise LlamaZooError(f"--defense {FIREWALL}{spec}: for Prompt Guard give the model itself, --defense "
                            "prompt-guard-2-86m (its weights as llama-zoo loads any model, a shadow for a shadow run)")
    if not scanners or unknown:
        raise LlamaZooError(f"--defense {FIREWALL}{spec}: LlamaFirewall's scanners are {', '.join(FIREWALL_SCANNERS)} "
                            "(comma-separated)")
    try:
        import asyncio
        from importlib.metadata import version

        from llamafirewall import ScanDecision, ScannerType, ToolMessage, UserMessage
        from llamafirewall.llamafirewall import create_scanner
    except ImportError:
        raise LlamaZooError(f"--defense {FIREWALL}...: llamafirewall is not installed: {FIREWALL_INSTALL}") from None
    # each scanner made once (LlamaFirewall.scan makes them anew for every message), decided as it decides
    made = [create_scanner(ScannerType(s)) for s in scanners]
    messages = {"user": UserMessage, "tool": ToolMessage}

    def verdicts(texts: Sequence[str], role: str) -> list[tuple[float, bool]]:
        out = []
        for text in texts:
            decisions: dict[Any, float] = {}
            for scanner in made:
                result = asyncio.run(scanner.scan(messages[role](content=text)))
                decisions[result.decision] = max(result.score, decisions.get(result.decision, result.score))
            if ScanDecision.BLOCK in decisions:
                out.append((float(decisions[ScanDecision.BLOCK]), True))
            else:
                final = max(decisions, key=decisions.get) if decisions else ScanDecision.ALLOW
                out.append((float(max([*decisions.values(), 0.0])), final != ScanDecision.ALLOW))
        return out

    return Screen({"kind": "llamafirewall", "scanners": scanners, "llamafirewall": version("llamafirewall")}, verdicts)
