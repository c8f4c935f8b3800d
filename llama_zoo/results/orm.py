"""The results schema: runs with full provenance, their metrics, and every sample they scored.

The migrations in ``migrations/versions`` build exactly this schema (a test compares them); a
change here needs a new migration there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("running", "completed", "failed", "interrupted")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, dt.datetime: DateTime(timezone=True)}


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)

    # what was run
    model_id: Mapped[str] = mapped_column(String(128), index=True)
    spec_hash: Mapped[str] = mapped_column(String(64))
    suite: Mapped[str] = mapped_column(String(64), index=True)
    suite_version: Mapped[str] = mapped_column(String(32))
    dataset_name: Mapped[str | None] = mapped_column(String(256))
    dataset_revision: Mapped[str | None] = mapped_column(String(128))
    dataset_hash: Mapped[str | None] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)  # protocol and generation options
    seed: Mapped[int | None] = mapped_column(Integer)

    # how it was run
    weights_source: Mapped[str] = mapped_column(String(16))  # hub | local | random | shadow
    weights_ref: Mapped[str | None] = mapped_column(String(512))  # repo id or path
    weights_revision: Mapped[str | None] = mapped_column(String(128))
    weights_hash: Mapped[str | None] = mapped_column(String(64))
    tokenizer_hash: Mapped[str | None] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(16))
    dtype: Mapped[str | None] = mapped_column(String(16))
    batch_size: Mapped[int | None] = mapped_column(Integer)
    device: Mapped[dict[str, Any]] = mapped_column(default=dict)  # GPU name and count, driver, CPU
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)  # llama-zoo, torch, transformers, ...
    runner: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # threads, KV cache, quantisation, server models
    warnings: Mapped[list[str] | None] = mapped_column(JSON)  # e.g. a suite that does not suit the model's purpose
    git_sha: Mapped[str | None] = mapped_column(String(40))

    # when, and how fast
    created_at: Mapped[dt.datetime] = mapped_column(index=True)
    finished_at: Mapped[dt.datetime | None]
    wall_time_s: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    n_samples: Mapped[int | None] = mapped_column(Integer)  # expected, when known up front

    # liveness: a running run whose process is gone is interrupted (revision 0002)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[dt.datetime | None]

    metrics: Mapped[list["Metric"]] = relationship(back_populates="run", cascade="all, delete-orphan",
                                                   passive_deletes=True)

    __table_args__ = (Index("ix_runs_model_suite", "model_id", "suite"),)


class Metric(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict[str, Any] | None]

    run: Mapped[Run] = relationship(back_populates="metrics")

    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_metrics_run_name"),)


class Sample(Base):
    __tablename__ = "samples"

    # (run_id, idx) is the key: a resumed run can never store a sample twice.
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    input: Mapped[str | None] = mapped_column(Text)
    input_ref: Mapped[str | None] = mapped_column(String(512))  # e.g. "HumanEval/12" instead of the text
    output: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    scores: Mapped[dict[str, Any] | None]
    extra: Mapped[dict[str, Any] | None]
