"""The first schema: runs with provenance, metrics, samples.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(64), nullable=False),
        sa.Column("suite_version", sa.String(32), nullable=False),
        sa.Column("dataset_name", sa.String(256)),
        sa.Column("dataset_revision", sa.String(128)),
        sa.Column("dataset_hash", sa.String(64)),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer()),
        sa.Column("weights_source", sa.String(16), nullable=False),
        sa.Column("weights_ref", sa.String(512)),
        sa.Column("weights_revision", sa.String(128)),
        sa.Column("weights_hash", sa.String(64)),
        sa.Column("tokenizer_hash", sa.String(64)),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("dtype", sa.String(16)),
        sa.Column("batch_size", sa.Integer()),
        sa.Column("device", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("git_sha", sa.String(40)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("wall_time_s", sa.Float()),
        sa.Column("tokens_per_s", sa.Float()),
        sa.Column("n_samples", sa.Integer()),
    )
    op.create_index("ix_runs_config_hash", "runs", ["config_hash"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_model_id", "runs", ["model_id"])
    op.create_index("ix_runs_suite", "runs", ["suite"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_model_suite", "runs", ["model_id", "suite"])

    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("stderr", sa.Float()),
        sa.Column("ci_low", sa.Float()),
        sa.Column("ci_high", sa.Float()),
        sa.Column("n", sa.Integer()),
        sa.Column("extra", sa.JSON()),
        sa.UniqueConstraint("run_id", "name", name="uq_metrics_run_name"),
    )
    op.create_index("ix_metrics_run_id", "metrics", ["run_id"])

    op.create_table(
        "samples",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True),
        sa.Column("input", sa.Text()),
        sa.Column("input_ref", sa.String(512)),
        sa.Column("output", sa.Text()),
        sa.Column("target", sa.Text()),
        sa.Column("scores", sa.JSON()),
        sa.Column("extra", sa.JSON()),
    )


def downgrade() -> None:
    op.drop_table("samples")
    op.drop_table("metrics")
    op.drop_table("runs")
