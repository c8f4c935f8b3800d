"""How a vision model is asked, per benchmark, and how its answer is read back.

Two styles:

- ``short`` (the default): lmms-eval's prompts, the same for every model: the question, then an
  instruction to answer in a word or phrase (multiple choice: the options lettered A., B., ...
  and "Answer with the option's letter from the given choices directly.").
- ``meta``: the prompts Meta reports Llama 3.2 Vision with (``models/llama3_2/eval_details.md``
  in meta-llama/llama-models), per benchmark and, where Meta used two, per model size. ChartQA,
  AI2D (11B) and MMMU are chain-of-thought prompts: the answer is what follows the last "FINAL
  ANSWER" (ChartQA, AI2D) or the reply's last option (MMMU, "Indicate the correct answer at the
  end"). Meta published no such file for Llama 4, so ``meta`` is refused there rather than guessed.

A question's benchmark is the one its set comes from (``VisualQuestion.benchmark``), or the one its
metric stands for: VQA accuracy for VQAv2, ANLS for DocVQA, relaxed accuracy for ChartQA, multiple
choice for MMMU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.vision.metrics import CHOICE_LETTERS

STYLES = ("short", "meta")
BENCHMARK_OF_METRIC = {"vqa": "vqav2", "anls": "docvqa", "relaxed": "chartqa", "mcq": "mmmu"}


@dataclass(frozen=True)
class Prompt:
    template: str  # {question}; {options} for multiple choice
    max_new_tokens: int
    final_answer: bool = False  # the answer is what follows the last "FINAL ANSWER"
    # how the options are written: "letters" ({options} as "A. x\nB. y"), "list" ({options} as
    # "['x', 'y']") or "numbers" (after the question as "1. x\n2. y"; the reply names a number)
    options: str = "letters"


SHORT_ANSWER = "{question}\nAnswer the question using a single word or phrase."
# lmms-eval's prompts and generation lengths (its vqav2, docvqa, chartqa, ai2d and mmmu tasks)
SHORT = {
    "vqav2": Prompt(SHORT_ANSWER, 16),
    "docvqa": Prompt(SHORT_ANSWER, 32),
    "chartqa": Prompt("{question}\nAnswer the question with a single word.", 16),
    "ai2d": Prompt("{question}\n{options}\nAnswer with the option's letter from the given choices directly.", 16),
    "mmmu": Prompt("{question}\n{options}\n\nAnswer with the option's letter from the given choices directly.", 128),
}

_YES_NO_NUMERIC = ("For yes/no questions, just respond Yes or No. If the answer is numeric, just respond with the "
                   "number and nothing else. If the answer has multiple words, just respond with the words and "
                   "absolutely nothing else. Never respond in a sentence or a phrase.\n")
_META_COMMON = {
    "vqav2": Prompt("<|image|> Look at the image carefully and answer this visual question. " + _YES_NO_NUMERIC
                    + " Respond with as few words as possible.\n Question: {question}", 25),
    "docvqa": Prompt("<|image|> Read the text in the image carefully and answer the question with the text as seen "
                     "exactly in the image. " + _YES_NO_NUMERIC + " Question: {question}", 512),
    "mmmu": Prompt("<|image|>Look at the image carefully and solve the following question step-by-step. {question} "
                   "Options: {options} Indicate the correct answer at the end.", 2048, options="list"),
}
# Meta's prompts by model (its id without -instruct); the 11B and 90B differ on ChartQA and AI2D
META = {
    "llama-3.2-11b-vision": {
        **_META_COMMON,
        "chartqa": Prompt("<|image|>You are provided a chart image and will be asked a question. You have to think "
                          "through your answer and provide a step-by-step solution. Once you have the solution, write "
                          "the final answer in at most a few words at the end with the phrase \"FINAL ANSWER:\". The "
                          "question is: {question}<cot_start>Let's think step by step.", 512, final_answer=True),
        "ai2d": Prompt("<|image|>Look at the scientific diagram carefully and answer the following question: "
                       "{question}\n Think step by step and finally respond to the question with only the correct "
                       "option number as \"FINAL ANSWER\". Let's think step by step.", 400, final_answer=True,
                       options="numbers"),
    },
    "llama-3.2-90b-vision": {
        **_META_COMMON,
        "chartqa": Prompt(
            "<|image|>You are provided a chart image and will be asked a question. Follow these steps carefully:\n "
            "Step 1: Analyze the question to understand what specific data or information is being asked for. Focus "
            "on whether the question is asking for a specific number or category from the chart image.\n Step 2: "
            "Identify any numbers, categories, or groups mentioned in the question and take note of them. Focus on "
            "detecting and matching them directly to the image. \nStep 3: Study the image carefully and find the "
            "relevant data corresponding to the categories or numbers mentioned. Avoid unnecessary assumptions or "
            "calculations; simply read the correct data from the image.\n Step 4: Develop a clear plan to solve the "
            "question by locating the right data. Focus only on the specific category or group that matches the "
            "question. \nStep 5: Use step-by-step reasoning to ensure you are referencing the correct numbers or data "
            "points from the image, avoiding unnecessary extra steps or interpretations.\n Step 6: Provide the final "
            "answer, starting with \"FINAL ANSWER:\" and using as few words as possible, simply stating the number or "
            "data point requested. \n\n The question is: {question}<cot_start>Let's think step by step.",
            512, final_answer=True),
        "ai2d": Prompt("<|image|>Look at the scientific diagram carefully and answer the following question: "
                       "{question}\n Respond only with the correct option digit.", 400, options="numbers"),
    },
}


def prompt_for(style: str, model_id: str, benchmark: str) -> Prompt:
    if style == "short":
        return SHORT[benchmark]
    prompts = META.get(model_id.removesuffix("-instruct"))
    if prompts is None:
        raise LlamaZooError(f"no Meta prompts are recorded for {model_id} (Meta published them for Llama 3.2 "
                            f"Vision only): use --prompt short")
    return prompts[benchmark]


def render(prompt: Prompt, question: str, options: tuple[str, ...]) -> str:
    """The user-turn text, with ``<|image|>`` where the image goes when the prompt places it.

    Meta's AI2D prompts ask for "the correct option number" without saying how the options were
    shown; here they follow the question numbered from 1 (our choice, not Meta's record)."""
    if prompt.options == "numbers" and options:
        question = question + "\n" + "\n".join(f"{n}. {option}" for n, option in enumerate(options, 1))
    if prompt.options == "list":
        written = repr(list(options))
    else:
        written = "\n".join(f"{letter}. {option}" for letter, option in zip(CHOICE_LETTERS, options))
    return prompt.template.format(question=question, options=written)


_FINAL = re.compile(r"final answer\s*:?", re.IGNORECASE)


_NUMBER = re.compile(r"\b(\d+)\b")


def extract(prompt: Prompt, reply: str, options: tuple[str, ...] = ()) -> str:
    """The answer inside a reply: after the last "FINAL ANSWER" for the prompts that ask for it
    (the whole reply when the model never wrote it), else the reply; an option number becomes the
    option's letter."""
    reply = reply.strip()
    if prompt.final_answer:
        found = list(_FINAL.finditer(reply))
        if found:
            reply = reply[found[-1].end():].strip().strip("*").strip()
    if prompt.options == "numbers" and options:
        numbers = [int(n) for n in _NUMBER.findall(reply) if 1 <= int(n) <= len(options)]
        if numbers:
            return CHOICE_LETTERS[numbers[-1] - 1]
    return reply
