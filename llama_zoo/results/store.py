"""The results store: begin, resume or reuse a run; write its samples in batches; finish it.

    store = Store.open()                      # --db / $LLAMA_ZOO_DB / the default SQLite file
    with store.begin(config, batch_size=8) as run:
        if run.cached:                       # same config, completed before: nothing to do
            ...
        for i, item in enumerate(dataset):
            if i in run.done:                # resumed: already stored
                continue
            run.add(i, input=..., output=..., scores={...})
        run.complete([MetricValue("word_perplexity", 8.79, ci_low=..., ci_high=..., n=62)])

Samples reach the database every ``flush_every`` samples, in one transaction with a heartbeat,
so a crash loses at most the batch in flight. A run whose process is gone is marked
``interrupted`` by the next command that looks at runs, and the next ``begin`` with the same
configuration resumes it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update

from llama_zoo.errors import LlamaZooError
from llama_zoo.results.db import display, open_engine, opened_read_only, translate_errors
from llama_zoo.results.identity import RunConfig, device_info, git_sha, package_versions, this_process
from llama_zoo.results.orm import Metric, Run, Sample

HEARTBEAT_S = 10.0
STALE_AFTER_S = 120.0  # no heartbeat for this long: the process is gone, wherever it ran


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C lands after the block, not inside it. A KeyboardInterrupt raised inside a SQLite write
    can leave that connection holding the write lock, so the write that records the interruption
    waited out the whole busy timeout and failed with "database is locked" (1 in 25 tries)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield  # signal handlers belong to the main thread; one set by someone else is theirs
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if caught:
            raise KeyboardInterrupt


class RunNotFoundError(LlamaZooError):
    pass


class RunBusyError(LlamaZooError):
    pass


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class SampleFilter:
    """Which samples of a run to read: by verdict (the boolean score ``verdict_key``), by a numeric
    score in [low, high], by text in the prompt or the output (any case); None: any."""

    passed: bool | None = None
    verdict_key: str | None = None
    score_key: str | None = None
    low: float | None = None
    high: float | None = None
    text: str | None = None

    def clauses(self) -> list:
        out = []
        if self.passed is not None and self.verdict_key:
            verdict = Sample.scores[self.verdict_key].as_boolean()
            out.append(verdict.is_(True) if self.passed else or_(verdict.is_(False), verdict.is_(None)))
        if self.score_key and (self.low is not None or self.high is not None):
            value = Sample.scores[self.score_key].as_float()
            out += [value >= self.low] if self.low is not None else []
            out += [value <= self.high] if self.high is not None else []
        if self.text:
            out.append(or_(Sample.input.icontains(self.text, autoescape=True),
                           Sample.output.icontains(self.text, autoescape=True)))
        return out


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.timezone.utc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


SAMPLE_FIELDS = ("input", "input_ref", "output", "target", "scores", "extra")


@dataclass
class RunHandle:
    """One run being written. ``cached`` runs are complete already and take no writes."""

    store: "Store"
    run_id: str
    cached: bool = False
    resumed: bool = False
    done: set[int] = field(default_factory=set)
    flush_every: int = 256
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None
    _started: dt.datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if not self.cached:
            self._beat = threading.Thread(target=self._heartbeat_loop, daemon=True, name=f"heartbeat-{self.run_id}")
            self._beat.start()

    # -- writing

    def add(self, idx: int, **sample: Any) -> None:
        """Queue one sample; stored with the next batch. Indices already stored are ignored."""
        self._writable()
        unknown = set(sample) - set(SAMPLE_FIELDS)
        if unknown:
            raise TypeError(f"unknown sample fields: {', '.join(sorted(unknown))}")
        if idx in self.done:
            return
        self.done.add(idx)
        self._pending.append({"run_id": self.run_id, "idx": idx, **{k: sample.get(k) for k in SAMPLE_FIELDS}})
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        with translate_errors(self.store.url), self.store._write() as conn:
            conn.execute(insert(Sample), rows)
            conn.execute(update(Run).where(Run.id == self.run_id).values(heartbeat_at=utcnow()))

    def complete(self, metrics: Iterable[MetricValue] = (), *, tokens_per_s: float | None = None,
                 runner: dict[str, Any] | None = None, warnings: list[str] | None = None) -> None:
        """Store the metrics and mark the run completed, in one transaction."""
        self._writable()
        self.flush()
        now = utcnow()
        with self.store._write() as conn:
            conn.execute(delete(Metric).where(Metric.run_id == self.run_id))  # a resumed run recomputes them
            rows = [{"run_id": self.run_id, **asdict(m)} for m in metrics]
            if rows:
                conn.execute(insert(Metric), rows)
            conn.execute(update(Run).where(Run.id == self.run_id).values(
                status="completed", finished_at=now, heartbeat_at=now, error=None,
                wall_time_s=(now - self._started).total_seconds(), tokens_per_s=tokens_per_s,
                **({"runner": runner} if runner is not None else {}),
                **({"warnings": warnings} if warnings else {})))
        self._stop_heartbeat()

    def fail(self, error: str, status: str = "failed") -> None:
        if self.cached:
            return
        self.flush()
        with translate_errors(self.store.url), self.store._write() as conn:
            conn.execute(update(Run).where(Run.id == self.run_id).values(
                status=status, error=error, finished_at=utcnow()))
        self._stop_heartbeat()

    def _writable(self) -> None:
        if self.cached:
            raise LlamaZooError(f"run {self.run_id} is a cached, completed run; use --force to run again")

    # -- liveness

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                with self.store._write() as conn:
                    conn.execute(update(Run).where(Run.id == self.run_id, Run.status == "running")
                                 .values(heartbeat_at=utcnow()))
            except Exception:  # a missed beat only makes the run look stale sooner  # noqa: BLE001
                pass

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=5)

    # -- context manager: an exception fails the run, Ctrl-C interrupts it (resumable)

    def __enter__(self) -> "RunHandle":
        return self

    def __exit__(self, exc_type, exc, _tb) -> None:
        if self.cached:
            return
        if exc_type is None:
            self.flush()
            self._stop_heartbeat()
            return
        if issubclass(exc_type, KeyboardInterrupt):
            self.fail("interrupted by the user", status="interrupted")
        else:
            self.fail(f"{exc_type.__name__}: {exc}")


class Store:
    """A results database. Every public method turns database trouble into one clear error."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.url = str(engine.url)

    @classmethod
    def open(cls, db: str | None = None, read_only: bool = False) -> "Store":
        """The user's database; ``read_only``: an existing one, opened so that nothing can write to it."""
        return cls(open_engine(db, read_only=read_only))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self):
        with _interrupts_deferred(), self.engine.begin() as conn:
            yield conn

    # -- runs

    def begin(
        self,
        config: RunConfig,
        *,
        force: bool = False,
        batch_size: int | None = None,
        n_samples: int | None = None,
        flush_every: int = 256,
    ) -> RunHandle:
        """A handle to write ``config``'s run: cached if completed before, resumed if interrupted."""
        config_hash = config.config_hash()
        with translate_errors(self.url):
            self.mark_dead_runs()
            with self.engine.connect() as conn:
                previous = conn.execute(
                    select(Run.id, Run.status, Run.host, Run.pid)
                    .where(Run.config_hash == config_hash)
                    .order_by(Run.created_at.desc()).limit(1)
                ).first()
            host, pid = this_process()
            if previous is not None and not force:
                if previous.status == "completed":
                    return RunHandle(self, previous.id, cached=True)
                if previous.status == "running":
                    raise RunBusyError(
                        f"run {previous.id} with this configuration is running (pid {previous.pid} on "
                        f"{previous.host}); wait for it, or stop it and run again to resume")
                with self._write() as conn:
                    claimed = conn.execute(update(Run).where(Run.id == previous.id, Run.status != "running").values(
                        status="running", error=None, finished_at=None, host=host, pid=pid,
                        heartbeat_at=utcnow(), batch_size=batch_size, versions=package_versions(),
                        git_sha=git_sha())).rowcount
                if not claimed:  # another process resumed it between our read and this write
                    raise RunBusyError(f"run {previous.id} with this configuration was just resumed by another process")
                done = self.sample_indices(previous.id)
                return RunHandle(self, previous.id, resumed=True, done=done, flush_every=flush_every)
            run_id = uuid.uuid4().hex[:12]
            now = utcnow()
            with self._write() as conn:
                conn.execute(insert(Run).values(
                    id=run_id, config_hash=config_hash, status="running", created_at=now, heartbeat_at=now,
                    host=host, pid=pid, batch_size=batch_size, n_samples=n_samples,
                    device=device_info(), versions=package_versions(), git_sha=git_sha(),
                    **config.columns()))
            return RunHandle(self, run_id, flush_every=flush_every)

    def mark_dead_runs(self) -> list[str]:
        """Runs still marked running whose process is gone: mark them interrupted (resumable)."""
        if opened_read_only(self.engine):  # seen as their writers left them
            return []
        host, _ = this_process()
        now = utcnow()
        with translate_errors(self.url):
            with self.engine.connect() as conn:
                running = conn.execute(select(Run.id, Run.host, Run.pid, Run.heartbeat_at)
                                       .where(Run.status == "running")).all()
            dead = []
            for run in running:
                beat = _as_utc(run.heartbeat_at)
                stale = beat is None or (now - beat).total_seconds() > STALE_AFTER_S
                gone = run.host == host and run.pid is not None and not _pid_alive(run.pid)
                if stale or gone:
                    dead.append(run.id)
            if dead:
                with self._write() as conn:
                    conn.execute(update(Run).where(Run.id.in_(dead), Run.status == "running").values(
                        status="interrupted", error="the process writing this run stopped without finishing it"))
            return dead

    def resolve(self, run_id: str) -> str:
        """A full run id from an id or a unique prefix of one (as git does with commits)."""
        with translate_errors(self.url), self.engine.connect() as conn:
            matches = conn.execute(select(Run.id).where(Run.id.startswith(run_id, autoescape=True)).limit(3)).scalars().all()
        if not run_id or not matches:
            raise RunNotFoundError(f"no run {run_id!r} in {display(self.url)} (see 'llama-zoo runs list')")
        if len(matches) > 1:
            raise RunNotFoundError(f"run id {run_id!r} is ambiguous: {', '.join(matches)}...")
        return matches[0]

    def get(self, run_id: str) -> dict[str, Any]:
        """One run's row with its provenance, metrics and sample count."""
        full = self.resolve(run_id)
        self.mark_dead_runs()
        with translate_errors(self.url), self.engine.connect() as conn:
            run = conn.execute(select(Run.__table__).where(Run.id == full)).mappings().one()
            metrics = conn.execute(select(Metric.__table__).where(Metric.run_id == full).order_by(Metric.name)).mappings().all()
            count = conn.execute(select(func.count()).select_from(Sample).where(Sample.run_id == full)).scalar_one()
        return {**dict(run), "metrics": [dict(m) for m in metrics], "samples_stored": count}

    def list_runs(
        self, model: str | None = None, suite: str | None = None, status: str | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs newest first, each with its metrics as ``{name: value}``."""
        self.mark_dead_runs()
        query = select(Run.id, Run.model_id, Run.suite, Run.dataset_name, Run.weights_source, Run.backend,
                       Run.status, Run.created_at, Run.wall_time_s).order_by(Run.created_at.desc())
        if model:
            query = query.where(Run.model_id == model)
        if suite:
            query = query.where(Run.suite == suite)
        if status:
            query = query.where(Run.status == status)
        if limit:
            query = query.limit(limit)
        with translate_errors(self.url), self.engine.connect() as conn:
            runs = [dict(r) for r in conn.execute(query).mappings()]
            metric_query = select(Metric.run_id, Metric.name, Metric.value)
            if limit or model or suite or status:
                metric_query = metric_query.where(Metric.run_id.in_([r["id"] for r in runs]))
            by_run: dict[str, dict[str, float]] = {}
            for run_id, name, value in conn.execute(metric_query):
                by_run.setdefault(run_id, {})[name] = value
        for r in runs:
            r["metrics"] = by_run.get(r["id"], {})
        return runs

    def completed_runs(self, suite: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """Completed runs newest first, each row whole with ``metrics`` as ``{name: metric row}``."""
        query = select(Run.__table__).where(Run.status == "completed").order_by(Run.created_at.desc())
        if suite:
            query = query.where(Run.suite == suite)
        if model:
            query = query.where(Run.model_id == model)
        with translate_errors(self.url), self.engine.connect() as conn:
            runs = [dict(r) for r in conn.execute(query).mappings()]
            by_run: dict[str, dict[str, dict[str, Any]]] = {}
            metric_query = select(Metric.__table__)
            if suite or model:
                metric_query = metric_query.where(Metric.run_id.in_([r["id"] for r in runs]))
            for m in conn.execute(metric_query).mappings():
                by_run.setdefault(m["run_id"], {})[m["name"]] = dict(m)
        for r in runs:
            r["metrics"] = by_run.get(r["id"], {})
        return runs

    def counts(self) -> dict[str, int]:
        """How many runs, metrics and samples the database holds."""
        with translate_errors(self.url), self.engine.connect() as conn:
            return {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                    for name, table in (("runs", Run), ("metrics", Metric), ("samples", Sample))}

    def sample_indices(self, run_id: str) -> set[int]:
        with translate_errors(self.url), self.engine.connect() as conn:
            return set(conn.execute(select(Sample.idx).where(Sample.run_id == run_id)).scalars())

    def iter_samples(self, run_id: str, limit: int | None = None, chunk: int = 5000) -> Iterator[dict[str, Any]]:
        """Samples in index order, read in chunks so a large run never sits in memory whole."""
        full = self.resolve(run_id)
        last, seen = -1, 0
        with translate_errors(self.url):
            while limit is None or seen < limit:
                take = chunk if limit is None else min(chunk, limit - seen)
                with self.engine.connect() as conn:
                    rows = conn.execute(select(Sample.__table__).where(Sample.run_id == full, Sample.idx > last)
                                        .order_by(Sample.idx).limit(take)).mappings().all()
                if not rows:
                    return
                for row in rows:
                    yield dict(row)
                last, seen = rows[-1]["idx"], seen + len(rows)

    def sample_page(self, run_id: str, chosen: SampleFilter = SampleFilter(), after: int = -1,
                    limit: int = 50) -> list[dict[str, Any]]:
        """At most ``limit`` samples of a run after index ``after``, in index order, that ``chosen``
        keeps: one query on the (run, index) key, however many samples the run holds."""
        query = (select(Sample.__table__).where(and_(Sample.run_id == run_id, Sample.idx > after, *chosen.clauses()))
                 .order_by(Sample.idx).limit(limit))
        with translate_errors(self.url), self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def delete(self, run_id: str) -> str:
        full = self.resolve(run_id)
        with translate_errors(self.url), self._write() as conn:
            # explicit, so that it holds where foreign keys are not enforced
            conn.execute(delete(Sample).where(Sample.run_id == full))
            conn.execute(delete(Metric).where(Metric.run_id == full))
            conn.execute(delete(Run).where(Run.id == full))
        return full

    def gc(self, include_interrupted: bool = False, dry_run: bool = False) -> dict[str, int]:
        """Remove failed runs (and interrupted ones if asked) and samples or metrics with no run."""
        self.mark_dead_runs()
        statuses = ["failed", "interrupted"] if include_interrupted else ["failed"]
        with translate_errors(self.url), self._write() as conn:
            doomed = conn.execute(select(Run.id).where(Run.status.in_(statuses))).scalars().all()
            known = select(Run.id)
            counts = {
                "runs": len(doomed),
                "orphaned_samples": conn.execute(select(func.count()).select_from(Sample)
                                                 .where(Sample.run_id.not_in(known))).scalar_one(),
                "orphaned_metrics": conn.execute(select(func.count()).select_from(Metric)
                                                 .where(Metric.run_id.not_in(known))).scalar_one(),
            }
            if not dry_run:
                for table in (Sample, Metric):
                    conn.execute(delete(table).where(table.run_id.in_(doomed) | table.run_id.not_in(known)))
                conn.execute(delete(Run).where(Run.id.in_(doomed)))
        return counts
