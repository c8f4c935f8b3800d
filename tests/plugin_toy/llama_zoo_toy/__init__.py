"""A third-party suite in one module: does the model give a few fixed sentences a mean per-token
log-probability above a threshold? Pass/fail per sentence, so compare pairs it with McNemar."""

from __future__ import annotations

import hashlib

from llama_zoo.suites.core.base import Chart, Item, McNemar, Option, Plan, Sample, SuiteInfo
from llama_zoo.backends.base import TokenWindow

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A llama is a domesticated South American camelid.",
    "def add(a, b):\n    return a + b\n",
    "Perplexity is the exponential of the mean negative log-likelihood.",
    "Rome was not built in a day.",
    "import numpy as np\nprint(np.zeros(3))\n",
)


class ToySuite:
    info = SuiteInfo(
        name="toy", version="1", summary="A toy plug-in suite: fixed sentences above a log-probability threshold.",
        headline="accuracy", lower_is_better=False, setup_keys=("toy_threshold",), paired=McNemar("correct", "accuracy"),
        charts=(Chart("metric_vs_params", "accuracy"),),
        options=(Option("toy_threshold", -11.0, "Mean log-probability per token a sentence must beat.", type=float),),
    )

    def check(self, spec, options) -> None:
        pass

    def plan(self, ctx) -> Plan:
        items = []
        for i, text in enumerate(ctx.first(SENTENCES)):
            ids = ctx.tokenizer(text, add_special_tokens=False).input_ids
            items.append(Item(i, (TokenWindow([ctx.tokenizer.bos_token_id], ids),), text))
        digest = hashlib.sha256("\n".join(SENTENCES).encode()).hexdigest()
        return Plan("toy-sentences", None, digest, items, {"toy_threshold": ctx.options["toy_threshold"]})

    def score(self, items, answers, seconds, ctx, emit) -> None:
        for item, (logprobs,) in zip(items, answers):
            mean = sum(logprobs) / len(logprobs)
            emit(Sample(item.index, input=item.data, input_ref=f"sentence {item.index}",
                        scores={"mean_logprob": mean, "correct": mean > ctx.options["toy_threshold"]}))

    def metrics(self, samples, seed, runner=None, state=None):
        correct = [bool(s["scores"]["correct"]) for s in samples]
        return [{"name": "accuracy", "value": sum(correct) / len(correct), "n": len(correct)}]


suite = ToySuite()
