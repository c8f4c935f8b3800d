"""The protocol between suites and the evaluation loop, and the description of a suite as data.

A suite is one object: ``info`` (what reports, compare and the CLI read: name, version, headline
metric, the options it takes, its paired test, its charts), ``check`` (refuse a model from registry
facts before anything loads), ``plan`` (the dataset's identity and the work items, each carrying the
requests it needs answered), ``score`` (answers into stored samples) and ``metrics`` (stored
samples into metrics, so a resumed run computes the same numbers as an uninterrupted one).

Suites speak the runner protocol (``llama_zoo.backends.base``) and never import a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option  # noqa: F401 - suites import it from here too


# -- paired tests: how ``llama-zoo compare`` decides whether two runs really differ


@dataclass(frozen=True)
class McNemar:
    """Pass/fail per shared sample (the boolean score ``key``): McNemar's exact test."""

    key: str = "passed"
    label: str = "pass rate"


@dataclass(frozen=True)
class Ratio:
    """A metric that is ``transform(sum(numerator) / sum(denominator))`` over samples. A numerator
    written ``-logprob`` is the negated score; no denominator counts each sample once."""

    metric: str
    numerator: str
    denominator: str | None = None
    transform: str = "identity"  # identity | exp | bits (nats to bits)


@dataclass(frozen=True)
class Statistic:
    """A metric computed from two per-sample scores at once, such as the area under the
    precision-recall curve of ``score`` against ``label`` (``metric`` names a statistic of
    ``llama_zoo.suites.core.classification.STATISTICS``)."""

    metric: str
    score: str = "score"
    label: str = "label"


@dataclass(frozen=True)
class PairedBootstrap:
    """Continuous scores: a paired bootstrap over shared samples of each ratio metric and statistic."""

    ratios: tuple[Ratio, ...] = ()
    statistics: tuple[Statistic, ...] = ()


PairedTest = McNemar | PairedBootstrap


@dataclass(frozen=True)
class Chart:
    """A chart the report draws for a suite: ``metric_vs_params`` (one point per model, parameters
    on a log axis), ``by_option`` (bars of ``metric`` per (model, ``group`` option value), one
    series per value of the ``series`` option), ``heatmap`` (one length x depth grid per run, from
    ``extra["cells"]`` of ``metric``) or ``by_length`` (one line per run through its
    ``length/<L>/<metric>`` metrics) or ``trade_off`` (one point per run, ``metric`` against
    ``x_metric``, coloured by the ``series`` option: attack success against utility per defence);
    the last three draw shadow runs only in their own section."""

    kind: str
    metric: str
    log_y: bool = False
    group: str | None = None
    series: str | None = None
    x_metric: str | None = None


class SampleImages(Protocol):
    """A run's images found again from its dataset's name and a sample's input reference."""

    def kept(self, dataset: str | None) -> bool: ...  # whether this machine holds them

    def of(self, dataset: str | None, ref: str) -> Any: ...  # a PIL image, or None


@dataclass(frozen=True)
class SuiteInfo:
    name: str
    version: str
    summary: str
    headline: str  # the metric its leaderboard is ordered by
    lower_is_better: bool = False
    # where one suite object stands for many (lm-eval tasks): the stored option holding each run's
    # headline, as {"metric": name, "lower_is_better": bool}
    headline_option: str | None = None
    setup_keys: tuple[str, ...] = ()  # the stored options that tell two rows of a leaderboard apart
    paired: PairedTest | tuple[PairedTest, ...] | None = None
    charts: tuple[Chart, ...] = ()
    options: tuple[Option, ...] = ()
    datasets: str = ""  # what --dataset takes, for the CLI's help
    needs_tokens: bool = True  # builds token-id requests: a text-only backend cannot run it
    scores_samples_file: bool = False  # can score completions made elsewhere (--samples-file)
    scores_predictions_file: bool = False  # can score classifier scores made elsewhere (--predictions-file)
    weights: tuple[str, ...] | None = None  # the weights sources it accepts (None: any); a measurement of speed takes random ones
    items_per_chunk: int | None = None  # at most this many items per runner call (1: each call timed alone)
    # The loop, not the suite, puts --limit and --context into a run's identity. takes_limit: the
    # suite reads the first ``ctx.limit`` rows (``Context.first``) and its runs store ``limit``;
    # context_in_identity: a run where a model answers stores ``context``. Refusal, insecure-code
    # and vqa never stored it, so they say False and their stored runs stay cache hits.
    takes_limit: bool = True
    context_in_identity: bool = True
    always_new: bool = False  # a measurement: never a cache hit
    # an item is a conversation: after each answer the loop asks ``follow_up(item, answers, ctx)`` for
    # the next step's item (None: done) and scores the last one (tool use over several steps)
    interactive: bool = False
    # who the suite measures: "any" model, "generalist" language models (a safety classifier is
    # warned), or "instruct" models (a base model is warned too); a mismatch is a warning, stored with the run
    meant_for: str = "any"
    # called with --dataset, --dataset-revision and the suite's options before the model or tokenizer
    # loads: raises the one-line error planning would raise later where the data is neither here nor
    # on a reachable hub (None: nothing to check early)
    check_data: Callable[[str | None, str | None, Mapping[str, Any]], None] | None = None
    # for the viewer (llama-zoo serve): a sample's target lists, comma-separated, what to mark where it
    # appears in the sample's text (hidden needles); and where a sample's image is found again
    marks_target: bool = False
    images: "SampleImages | None" = None

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """This suite's options with defaults filled in and choices checked."""
        return {o.name: o.checked(given[o.name]) if given.get(o.name) is not None else o.default for o in self.options}

    def headline_of(self, run_options: Mapping[str, Any] | None) -> tuple[str, bool]:
        """The metric a run is ranked and judged by, and whether lower is better: the suite's, or,
        for a suite standing for many (lm-eval tasks), the one the run stored."""
        if self.headline_option:
            stored = (run_options or {}).get(self.headline_option) or {}
            return stored.get("metric", ""), bool(stored.get("lower_is_better"))
        return self.headline, self.lower_is_better

    @property
    def paired_tests(self) -> tuple[PairedTest, ...]:
        if self.paired is None:
            return ()
        return self.paired if isinstance(self.paired, tuple) else (self.paired,)


# -- what the loop hands a suite, and what a suite hands back


@dataclass(frozen=True)
class Context:
    """What a suite may know when it plans and scores a run (nothing here is loaded yet)."""

    spec: Any  # the registry's ModelSpec
    options: Mapping[str, Any]  # this suite's options, resolved
    tokenizer: Any  # None for text backends and for scoring a samples file
    context: int  # the window length in tokens the run may use
    seed: int = 0
    limit: int | None = None
    dataset: str | None = None
    dataset_revision: str | None = None
    samples_file: str | None = None
    predictions_file: str | None = None
    # open_model(name, weights=None): another registry model on this run's device (a judge), a shadow
    # for a shadow run; it has .spec, .tokenizer, .identity (for the plan's options) and .runner
    # (loaded on first use); one per run and name
    open_model: Callable[..., Any] | None = None
    state: Any = None  # the plan's ``state``, set by the loop for ``score``

    def first(self, rows: Sequence[Any]) -> Sequence[Any]:
        """The first ``--limit`` rows (documents, tasks, questions), or all of them: the one way a
        suite applies the limit (the loop records it in the run's identity)."""
        return rows[: self.limit] if self.limit else rows


@dataclass(frozen=True)
class Item:
    """One stored sample's worth of work: the requests whose answers it is scored from."""

    index: int
    requests: tuple[Any, ...]
    data: Any = None  # the suite's own (a document, a task, a completion made elsewhere)


@dataclass
class Plan:
    dataset_name: str | None
    dataset_revision: str | None
    dataset_hash: str | None
    items: list[Item]
    # the suite's own options as stored and part of the run's identity (the loop adds ``limit`` and
    # ``context``, see ``SuiteInfo.takes_limit``)
    options: dict[str, Any] = field(default_factory=dict)
    # recorded with the run to be shown, never telling runs apart (keys of ``results.identity.SHOWN``:
    # how the sandbox isolated programs)
    shown: dict[str, Any] = field(default_factory=dict)
    # whatever ``score`` and ``metrics`` need from planning (a loaded task, a dataset hash): the
    # loop hands it back as ``ctx.state`` and ``metrics(..., state=)``; a suite object keeps none
    state: Any = None


@dataclass(frozen=True)
class Sample:
    """One stored sample: its item's index, the columns every suite shares (each may be None), and
    the suite's own per-sample ``scores`` (what ``metrics`` and ``compare`` read) and ``extra``
    (shown, not scored), both as JSON mappings. Stored as the store's sample row, column for column."""

    index: int
    input_ref: str | None = None  # what the sample is of: a task id, a row id, "document 3"
    input: str | None = None  # the text scored or asked (None where it is too long to keep)
    output: str | None = None  # what the model (or a file made elsewhere) answered
    target: str | None = None  # the reference answer
    scores: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] | None = None

    def columns(self) -> dict[str, Any]:
        """The stored row's columns, as ``RunHandle.add`` takes them."""
        return {"input": self.input, "input_ref": self.input_ref, "output": self.output, "target": self.target,
                "scores": self.scores, "extra": self.extra}


Emit = Callable[[Sample], None]  # a scored sample -> stored

# An estimate's assumption, not a measurement: Llama 3's tokenizer takes about 4 bytes of English
# prose or Python per token (SentencePiece Llama 1/2 a little fewer). Only ``plan`` uses it.
BYTES_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Work:
    """What a run of a suite passes through a model, roughly, known before anything loads: the
    figure ``llama-zoo plan`` turns into time. A suite offers it with an optional method
    ``work(ctx) -> Work | None``, given a ``Context`` without a tokenizer."""

    scored: int  # tokens scored or prefilled
    generated: int  # new tokens, at most
    sequences: int  # sequences generated (decoding steps are shared by a batch of them)
    basis: str  # how the figure was reached


class Suite(Protocol):
    info: SuiteInfo

    def check(self, spec: Any, options: Mapping[str, Any]) -> None:
        """Refuse, from registry facts alone, a model this suite cannot run (a LlamaZooError)."""

    def plan(self, ctx: Context) -> Plan: ...

    def score(self, items: Sequence[Item], answers: Sequence[Sequence[Any]], seconds: float, ctx: Context,
              emit: Emit) -> None:
        """Turn each item's answers (one per request, in order) into a ``Sample`` and ``emit`` it.
        ``seconds`` is how long the runner took for this chunk of items."""

    def metrics(self, samples: Sequence[dict[str, Any]], seed: int, runner: Any = None, state: Any = None
                ) -> list[dict[str, Any]]:
        """Metrics from the stored samples (``runner`` is the loaded runner, or None; ``state`` the
        plan's)."""

    # An interactive suite (``info.interactive``) also has
    #   follow_up(item, answers, ctx) -> Item | None
    # the next step of the item's conversation, given the answers to its last requests (the same
    # index; its ``data`` carries the conversation), or None once it is over: then ``score`` gets
    # that last item and its answers. Steps of the items of a chunk are answered together.


# Shared by every suite that generates: one set of flags, whichever suite takes them.
GENERATION_OPTIONS = (
    Option("samples", 1, "Completions per task or prompt (pass@k for k <= N).", type=int, minimum=1),
    Option("temperature", 0.0, "0 is greedy.", type=float, minimum=0.0),
    Option("top_p", 1.0, "Nucleus sampling.", type=float, minimum=0.0, maximum=1.0),
    Option("max_new_tokens", 512, "Longest completion.", type=int, minimum=1),
)


def purpose_warnings(spec: Any, info: SuiteInfo) -> list[str]:
    """What the user should hear when a suite does not suit the model's purpose (run anyway)."""
    out = []
    safety = spec.capabilities.safety
    if safety is not None and info.meant_for in ("generalist", "instruct"):
        out.append(f"{spec.id} is a safety classifier ({safety.role}); {info.name} measures what general models "
                   "do, not what it is for")
    if info.meant_for == "instruct" and not spec.capabilities.instruct and safety is None:
        out.append(f"{spec.id} is a base model; {info.name} is written for instruction-tuned models (it asks a "
                   "question and judges the reply)")
    return out


def require_sampling(options: Mapping[str, Any]) -> None:
    """Several samples of one prompt differ only when drawn."""
    if options["samples"] > 1 and options["temperature"] <= 0:
        raise LlamaZooError("--samples N > 1 needs sampling: give --temperature T > 0")


def eos_ids(spec: Any) -> tuple[int, ...]:
    """The registry's end-of-sequence ids of a model (several for Llama 3 instruct and Guard models)."""
    eos = spec.tokenizer.eos_token_id if spec.tokenizer else None
    return tuple(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def require_language_model(spec: Any, suite: str) -> None:
    from llama_zoo.backends.weights import has_language_model_head

    if not has_language_model_head(spec):
        what = "has no published architecture" if spec.architecture is None else "has no language-model head"
        raise LlamaZooError(f"{spec.id} {what}; the {suite} suite needs one")
