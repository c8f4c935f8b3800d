"""lm-eval's RULER tasks (``niah_single_1`` ... ``ruler_qa_hotpot``): what they need that other
lm-eval tasks do not, said before anything loads, and their per-length metrics.

RULER generates its documents when the task is built: a haystack, needles drawn with
``wonderwords``, each prompt sized to a target length by counting tokens with the evaluated model's
tokenizer (task metadata ``tokenizer``, lengths ``max_seq_lengths``, lm-eval's default 4096). So a
task needs its packages, for the essay haystack nltk's ``punkt_tab`` sentence data and Paul
Graham's essays (a hub dataset), and for the QA tasks files fetched from the web at every build.

It reports one metric per length (``"1024"``) and gives every document -1 for lm-eval's default
length when that is not the document's own: a placeholder, not a score.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from llama_zoo.errors import LlamaZooError

NOT_RUN = -1.0  # RULER's per-document value for a length that is not the document's own
ESSAYS = "baber/paul_graham_essays"
# the tasks whose haystack is Paul Graham's essays, split into sentences by nltk
ESSAY_TASKS = frozenset({"niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multiquery", "niah_multivalue"})
# what the QA tasks fetch from the web each time they are built (lm-eval keeps no copy)
WEB_FILES = {"ruler_qa_squad": "SQuAD 2.0's dev set from rajpurkar.github.io",
             "ruler_qa_hotpot": "HotpotQA's dev set from huggingface.co"}
PACKAGES = ("wonderwords", "nltk", "scipy")  # lm-eval's own `ruler` extra


def is_ruler(entry: Any) -> bool:
    """Whether an lm-eval index entry is one of lm-eval's RULER tasks (its YAML in lm-eval's
    ``tasks/ruler``)."""
    path = getattr(entry, "yaml_path", None)
    if not path:
        return False
    import lm_eval.tasks

    return Path(path).resolve().parent == (Path(lm_eval.tasks.__file__).parent / "ruler").resolve()


def require(name: str) -> None:
    """The packages and offline data task ``name`` needs, or one line saying what is missing."""
    missing = [p for p in PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise LlamaZooError(f"lm-eval:{name} (RULER) needs {', '.join(missing)}: pip install 'llama-zoo[ruler]'")
    if name in ESSAY_TASKS and not has_punkt():
        raise LlamaZooError(f"lm-eval:{name} splits its essay haystack into sentences with nltk's punkt_tab data, "
                            "which is not installed: python -m nltk.downloader punkt_tab")


def has_punkt() -> bool:
    """nltk's ``punkt_tab`` where nltk looks for it ($NLTK_DATA, ~/nltk_data, the environment's share/...)."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab")
    except LookupError:
        return False
    return True


def missing_download(name: str, error: str) -> LlamaZooError | None:
    """The one line for a RULER task that failed to build because a download it needs failed."""
    if name in ESSAY_TASKS:
        return LlamaZooError(
            f"lm-eval:{name} builds its haystack from Paul Graham's essays, the hub dataset {ESSAYS}, which "
            f"cannot be read here ({error}); fetch it once where the hub is reachable: python -c \"import datasets; "
            f"datasets.load_dataset('{ESSAYS}', split='train')\"")
    if name in WEB_FILES:
        return LlamaZooError(f"lm-eval:{name} fetches {WEB_FILES[name]} each time it is built and cannot here "
                             f"({error}); run it where the web is reachable")
    return None


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """lm-eval's RULER module calls ``nltk.download("punkt_tab")`` when it is imported, and prints
    that it did: the tasks that need the data were checked for it (``require``), those that do not
    must not reach the network, and the print must not land in the CLI's output."""
    nltk = sys.modules.get("nltk") or (__import__("nltk") if importlib.util.find_spec("nltk") else None)
    download = getattr(nltk, "download", None)
    if nltk is not None:
        nltk.download = lambda *_, **__: False
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if nltk is not None:
            nltk.download = download


# -- as many documents as the run reads

# lm-eval's RULER generators, each under its module's own name: each makes 500 documents per length
GENERATORS = ("generate_samples", "sys_word_pair_random", "sys_kwext", "sys_vartrack_w_noise_random")


class ShortOfDocuments(Exception):
    """A capped generator skipped documents that do not fit their length: the documents after them
    are not lm-eval's, so the task is built again with all of them."""


def documents_capped(build: Callable[..., Any], cap: int) -> Callable[..., Any]:
    """``build`` (a RULER task's ``custom_dataset``) making at most ``cap`` documents per length
    instead of lm-eval's fixed 500: with ``--limit 2`` the rest would be generated (each one sized
    by tokenizing it, repeatedly) and never read. A generator draws its documents one after another,
    so the first ``cap`` are lm-eval's first ``cap``; a test holds them equal to lm-eval's own run.
    The generators are looked up in ``build``'s module, which lm-eval loads from the YAML's
    directory afresh for every task."""
    names = build.__globals__

    def capped(generate: Callable[..., list], default: Any) -> Callable[..., list]:
        def call(*args: Any, **kwargs: Any) -> list:
            asked = kwargs.get("num_samples", default)
            if not isinstance(asked, int) or asked <= cap:
                return generate(*args, **kwargs)
            made = generate(*args, **{**kwargs, "num_samples": cap})
            if len(made) < cap:
                raise ShortOfDocuments
            return made
        return call

    def built(*args: Any, **kwargs: Any) -> Any:
        import inspect

        originals = {name: names[name] for name in GENERATORS if callable(names.get(name))}
        for name, generate in originals.items():
            asked = inspect.signature(generate).parameters.get("num_samples")
            names[name] = capped(generate, asked.default if asked is not None else None)
        try:
            return build(*args, **kwargs)
        finally:
            names.update(originals)

    return built


# -- per-length metrics


def lengths_run(docs: Sequence[Mapping[str, Any]]) -> list[int]:
    """The sequence lengths a run's documents were generated at (each RULER document says its own)."""
    return sorted({int(doc["max_length"]) for doc in docs if "max_length" in doc})


def per_length(metric_names: Sequence[str]) -> bool:
    """Whether a task reports a metric per sequence length (RULER's convention: the metric's name is
    the length)."""
    return bool(metric_names) and all(str(name).isdigit() for name in metric_names)


def headline(lengths: Sequence[int], filter_name: str) -> str:
    """One length: its metric. Several: ``lengths_mean``, the mean of the per-length scores (RULER's
    own summary of a model over the lengths it ran)."""
    return f"{lengths[0]},{filter_name}" if len(lengths) == 1 else f"lengths_mean,{filter_name}"


def own_score(values: Mapping[str, Any], filter_name: str) -> float | None:
    """A document's score at its own length: the one length metric that is not a placeholder."""
    own = [v for k, v in values.items() if k.endswith(f",{filter_name}") and k.split(",")[0].isdigit()
           and v != NOT_RUN]
    return float(own[0]) if len(own) == 1 else None


def metrics(per_doc: Sequence[Mapping[str, Any]], filter_name: str, seed: int) -> list[dict[str, Any]]:
    """Per length: the mean over the documents of that length (placeholders dropped, as RULER's
    ``aggregate_metrics`` does), lm-eval's standard error of a mean, our 95% bootstrap interval over
    those documents; lengths no document ran are left out (lm-eval reports them as -1). With
    several lengths, ``lengths_mean`` and a bootstrap that resamples documents within each length."""
    from lm_eval.api.metrics import mean_stderr

    from llama_zoo.suites.core.stats import bootstrap_ratio_ci, macro_mean_ci

    by_length: dict[int, list[float]] = {}
    for values in per_doc:
        for key, value in values.items():
            name, _, f = key.partition(",")
            if f == filter_name and name.isdigit() and value != NOT_RUN:
                by_length.setdefault(int(name), []).append(float(value))
    out = []
    for length in sorted(by_length):
        items = by_length[length]
        ci = bootstrap_ratio_ci(items, [1.0] * len(items), lambda x: x, seed=seed)
        out.append({"name": f"{length},{filter_name}", "value": sum(items) / len(items),
                    "stderr": float(mean_stderr(items)) if len(items) > 1 else None,
                    "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": len(items)})
    if len(by_length) > 1:
        values = [v for length in sorted(by_length) for v in by_length[length]]
        groups = [length for length in sorted(by_length) for _ in by_length[length]]
        value, ci = macro_mean_ci(values, groups, seed=seed)
        out.insert(0, {"name": f"lengths_mean,{filter_name}", "value": value, "stderr": None,
                       "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": len(values)})
    return out


def check_context(name: str, metadata: Mapping[str, Any] | None, context: int) -> None:
    """RULER's documents fill their length: one longer than the run's context would be cut from
    the left (its needle with it), so such a run is refused before anything is generated."""
    from lm_eval.tasks.ruler.common_utils import DEFAULT_SEQ_LENGTHS

    lengths = (metadata or {}).get("max_seq_lengths", DEFAULT_SEQ_LENGTHS)
    if not isinstance(lengths, list) or not all(isinstance(n, int) and n > 0 for n in lengths):
        raise LlamaZooError(f"--lm-eval-metadata: max_seq_lengths must be a list of token counts, not {lengths!r}")
    if max(lengths, default=0) > context:
        raise LlamaZooError(f"lm-eval:{name} makes documents of up to {max(lengths)} tokens (max_seq_lengths "
                            f"{lengths}) and this run's context is {context}: give --context {max(lengths)}, or "
                            "shorter lengths with --lm-eval-metadata '{\"max_seq_lengths\": [...]}'")
