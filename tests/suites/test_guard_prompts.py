"""Golden strings: the guard suite's prompt for each Llama Guard version equals what the
checkpoint's own chat template renders (copies in ``guard_templates/``), for a prompt and a
response classification, with the real Llama 2 / 3 / 3.1 tokenizers where the version uses them.

Two differences are deliberate and asserted as such: prompts in Llama 3/4 headers end with the
"\\n\\n" the model writes after the assistant header (so the next token is the verdict), and the
Guard 3 8B template's stray leading space is left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_zoo.suites.safety.guard import encode, policy_categories, template_agrees, verdict_token_ids
from llama_zoo.suites.safety.guard_prompts import parse_verdict, render

TEMPLATES = Path(__file__).parent / "guard_templates"
PROMPT = "How do I make a bomb?"
RESPONSE = "I can't help with that."

# model id, template file, tokenizer directory in ../shared/tokenizers (None: the version's is not there)
VERSIONS = [
    ("llama-guard-7b", "guard-1", "llama2"),
    ("llama-guard-2-8b", "guard-2", "llama3"),
    ("llama-guard-3-8b", "guard-3-8b", "llama3_1"),
    ("llama-guard-3-1b", "guard-3-1b", "llama3_1"),
    ("llama-guard-3-11b-vision", "guard-3-11b-vision", "llama3_1"),
    ("llama-guard-4-12b", "guard-4", None),  # Llama 4's tokenizer is not in ../shared; the template renders text alone
]
PARTS = {"guard-3-1b", "guard-3-11b-vision", "guard-4"}  # these templates read content as a list of parts


def tokenizer_for(shared, name):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(shared / "tokenizers" / (name or "llama3_1"))


def template_render(tokenizer, template: str, turns, **kwargs) -> str:
    messages = [{"role": "user" if role == "user" else "assistant",
                 "content": [{"type": "text", "text": text}] if template in PARTS else text} for role, text in turns]
    return tokenizer.apply_chat_template(messages, chat_template=(TEMPLATES / f"{template}.jinja").read_text(),
                                         tokenize=False, **kwargs)


def as_scored(template: str, rendered: str) -> str:
    """The template's string with the two deliberate differences applied."""
    if template in ("guard-1", "guard-2"):
        return rendered
    return rendered.lstrip(" ") + "\n\n"


@pytest.mark.parametrize("model,template,tokenizer_dir", VERSIONS)
@pytest.mark.parametrize("turns", [[("user", PROMPT)], [("user", PROMPT), ("agent", RESPONSE)]], ids=["prompt", "response"])
def test_prompt_equals_the_checkpoint_template(model, template, tokenizer_dir, turns, shared, catalog):
    spec = catalog.get(model)
    tokenizer = tokenizer_for(shared, tokenizer_dir)
    ours = render(spec.capabilities.safety.prompt_format, policy_categories(spec, {}), turns)
    theirs = template_render(tokenizer, template, turns)
    assert ours == as_scored(template, theirs)
    if tokenizer_dir is None:
        return
    # the token ids: the template's string as its checkpoint tokenizes it, with BOS where training had one
    ids = encode(tokenizer, ours)
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    expected = tokenizer(as_scored(template, theirs), add_special_tokens=False).input_ids
    if template in ("guard-1", "guard-2"):  # no BOS in these templates; the checkpoints' tokenizers add one
        expected = [tokenizer.bos_token_id, *expected]
    assert ids == expected
    if template == "guard-1":  # Llama 2's tokenizer adds that BOS itself, and splits the text no differently
        assert tokenizer(ours).input_ids == ids


def test_version_quirks_are_kept(catalog):
    texts = {m: render(catalog.get(m).capabilities.safety.prompt_format, policy_categories(catalog.get(m), {}),
                       [("user", PROMPT)]) for m, _, _ in VERSIONS}
    assert "according our safety policy" in texts["llama-guard-3-8b"]  # the trained wording, typo and all
    assert "according to our safety policy" in texts["llama-guard-4-12b"]
    assert "O1: Violence and Hate. \nShould not\n" in texts["llama-guard-7b"] and "O2: Sexual Content.\nShould not" in texts["llama-guard-7b"]
    assert "S11: Sexual Content. \n<END" in texts["llama-guard-2-8b"]
    assert "S14: Code Interpreter Abuse." in texts["llama-guard-3-8b"] and "S14" not in texts["llama-guard-3-1b"]
    assert "categories.<|eot_id|>" in texts["llama-guard-3-8b"] and "categories. <|eot_id|>" in texts["llama-guard-3-1b"]


@pytest.mark.parametrize("tokenizer_dir", ["llama2", "llama3", "llama3_1"])
def test_verdict_words_are_single_tokens(tokenizer_dir, shared):
    tokenizer = tokenizer_for(shared, tokenizer_dir)
    ids = verdict_token_ids(tokenizer)
    assert ids["single_tokens"] is True
    assert tokenizer.decode([ids["safe"]]).strip() == "safe" and tokenizer.decode([ids["unsafe"]]).strip() == "unsafe"


def test_excluded_and_chosen_categories_match_the_template(shared, catalog):
    spec = catalog.get("llama-guard-3-1b")
    tokenizer = tokenizer_for(shared, "llama3_1")
    turns = [("user", PROMPT)]
    ours = render("guard-3", policy_categories(spec, {"exclude_categories": "S6,S13"}), turns)
    assert ours == as_scored("guard-3-1b", template_render(tokenizer, "guard-3-1b", turns, excluded_category_keys=["S6", "S13"]))
    chosen = render("guard-3", policy_categories(spec, {"categories": "S1,S9"}), turns)
    assert "S1: Violent Crimes.\nS9: Indiscriminate Weapons.\n<END UNSAFE CONTENT CATEGORIES>" in chosen


def test_custom_policy_file(tmp_path, catalog):
    policy = tmp_path / "policy.yaml"
    policy.write_text("S1: Medical misinformation\nS2:\n  name: Gambling\n  guidelines: |-\n    Should not\n    - Promote betting.\n")
    categories = policy_categories(catalog.get("llama-guard-3-1b"), {"policy": str(policy)})
    assert categories == [("S1", "Medical misinformation", None), ("S2", "Gambling", "Should not\n- Promote betting.")]
    text = render("guard-3", categories, [("user", PROMPT)])
    assert "S1: Medical misinformation.\nS2: Gambling.\nShould not\n- Promote betting.\n<END UNSAFE" in text


@pytest.mark.parametrize("text,expected", [
    ("safe", ("safe", ())),
    ("\n\nunsafe\nS1,S10", ("unsafe", ("S1", "S10"))),
    ("unsafe", ("unsafe", ())),
    ("I think it is fine", (None, ())),
])
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize("model,template,tokenizer_dir", VERSIONS)
def test_a_shipped_template_is_checked_at_run_time(model, template, tokenizer_dir, shared, catalog):
    """What a real checkpoint's tokenizer carries is compared with the builder when a run plans."""
    spec = catalog.get(model)
    tokenizer = tokenizer_for(shared, tokenizer_dir)
    turns = [("user", PROMPT), ("agent", RESPONSE)]
    ours = render(spec.capabilities.safety.prompt_format, policy_categories(spec, {}), turns)
    assert template_agrees(tokenizer, ours, turns) is None  # a base model's chat template is no Guard template
    tokenizer.chat_template = (TEMPLATES / f"{template}.jinja").read_text()
    assert template_agrees(tokenizer, ours, turns) is True
    tokenizer.chat_template = tokenizer.chat_template.replace("safety policy", "safety rules")
    assert template_agrees(tokenizer, ours, turns) is False
