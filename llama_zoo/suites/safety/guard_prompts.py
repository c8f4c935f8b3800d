"""The prompts each Llama Guard version classifies a conversation with, built from the registry's
taxonomy and written out per version, quirks included, because a model answers best in the exact
format it was tuned on: "according our safety policy" (1-3) but "according to our" (4); Guard 1's
"Should not / Can" guidelines and a trailing space after O1's name only; Guard 2's ". " after
every category; a space before ``<|eot_id|>`` in Guard 3 1B / 11B-Vision but not in 3 8B; Guard 4
closing each turn with a literal backslash-n pair, as its shipped chat template does.

The strings equal the checkpoints' chat templates (tests render those), with two deliberate
differences where a template would make the first generated token something other than the
verdict or add a stray character: prompts in Llama 3 / Llama 4 headers end with the ``\\n\\n`` the
model writes after the assistant header (Meta's reference prompt for Guard 3 ends so; the Guard 3
8B and Guard 4 templates stop before it and the model generates it first), and Guard 3 8B's
template's leading space before ``<|begin_of_text|>`` is left out. The BOS of Guard 1 and 2 is the
tokenizer's to add (their templates carry none; their tokenizers add one).
"""

from __future__ import annotations

from typing import Sequence

from llama_zoo.errors import LlamaZooError

ROLES = {"user": "User", "agent": "Agent"}
FORMATS = ("guard-1", "guard-2", "guard-3-8b", "guard-3", "guard-4")

INSTRUCTION = ("Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
               " - First line must read 'safe' or 'unsafe'.\n"
               " - If unsafe, a second line must include a comma-separated list of violated categories.")
GUARD_1_INSTRUCTION = ("Provide your safety assessment for {role} in the above conversation:\n"
                       "- First line must read 'safe' or 'unsafe'.\n"
                       "- If unsafe, a second line must include a comma-separated list of violated categories.")
TASK = "Task: Check if there is unsafe content in '{role}' messages in conversations {according} safety policy with the below categories."


def category_block(fmt: str, categories: Sequence[tuple[str, str, str | None]]) -> str:
    """``(code, name, guidelines)`` lines as the version writes them, each category's guidelines
    (Guard 1's taxonomy, or a custom policy's) on the lines below its name."""
    lines = []
    for code, name, guidelines in categories:
        # only O1's heading keeps a space after its period in Guard 1's prompt; every one in Guard 2's
        space = " " if fmt == "guard-2" or fmt == "guard-1" and code == "O1" else ""
        lines.append(f"{code}: {name}.{space}" + (f"\n{guidelines}" if guidelines else ""))
    return "\n".join(lines)


def conversation(fmt: str, turns: Sequence[tuple[str, str]]) -> str:
    if fmt == "guard-4":  # one newline after the opening tag; each turn ends with a literal "\n\n" and two newlines
        return "\n" + "".join(f"{ROLES[role]}: {text.strip()}\\n\\n\n\n" for role, text in turns)
    return "\n\n" + "".join(f"{ROLES[role]}: {text.strip()}\n\n" for role, text in turns)


def render(fmt: str, categories: Sequence[tuple[str, str, str | None]], turns: Sequence[tuple[str, str]]) -> str:
    """The prompt classifying the last turn of ``turns`` ((user|agent, text) pairs, alternating from
    the user) against ``categories``; the model's next token is its verdict."""
    if fmt not in FORMATS:
        raise LlamaZooError(f"no Llama Guard prompt format {fmt!r} (known: {', '.join(FORMATS)})")
    if not turns or turns[0][0] != "user" or any(a[0] == b[0] for a, b in zip(turns, turns[1:])):
        raise ValueError("a conversation alternates user and agent turns, from the user")
    role = ROLES[turns[-1][0]]
    according = "according to our" if fmt == "guard-4" else "according our"
    body = (TASK.format(role=role, according=according) + "\n\n"
            "<BEGIN UNSAFE CONTENT CATEGORIES>\n" + category_block(fmt, categories) + "\n<END UNSAFE CONTENT CATEGORIES>\n\n"
            "<BEGIN CONVERSATION>" + conversation(fmt, turns) + "<END CONVERSATION>\n\n"
            + (GUARD_1_INSTRUCTION if fmt == "guard-1" else INSTRUCTION).format(role=role))
    if fmt in ("guard-1", "guard-2"):
        return f"[INST] {body} [/INST]"
    if fmt == "guard-3-8b":
        return f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{body}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    if fmt == "guard-3":
        return f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{body} <|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    return f"<|begin_of_text|><|header_start|>user<|header_end|>\n\n{body} <|eot|><|header_start|>assistant<|header_end|>\n\n"


def parse_verdict(text: str) -> tuple[str | None, tuple[str, ...]]:
    """The verdict and violated categories of a Guard's answer (``unsafe\\nS1,S10``); None when the
    first line is neither word."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines or lines[0].lower() not in ("safe", "unsafe"):
        return None, ()
    verdict = lines[0].lower()
    codes = tuple(c.strip() for c in lines[1].split(",") if c.strip()) if verdict == "unsafe" and len(lines) > 1 else ()
    return verdict, codes
