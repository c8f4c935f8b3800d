"""``llama-zoo models``: list, show, diff, tree, export and validate the registry.

Nothing here imports torch or transformers at module level: ``validate --transformers`` is the
one command that needs them, and imports them when it runs.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Optional

import typer
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from llama_zoo.cli.common import Format, TableOrJson, console, emit, print_json
from llama_zoo.errors import LlamaZooError
from llama_zoo.formatting import human
from llama_zoo.registry import derive
from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.query import flatten, parse_where, row

app = typer.Typer(
    help="The registry: every Llama model's architecture, links, lineage and derived numbers.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
class ExportFormat(str, Enum):
    hf_config = "hf-config"
    yaml = "yaml"
    json = "json"


class Capability(str, Enum):
    text = "text"
    instruct = "instruct"
    code = "code"
    fim = "fim"
    vision = "vision"
    safety = "safety"
    moe = "moe"


# Table column -> short header; json and csv carry every field of the row.
LIST_COLUMNS = {
    "id": "id", "family": "family", "params": "params", "active_params": "active", "context": "context",
    "num_hidden_layers": "layers", "hidden_size": "hidden", "num_attention_heads": "heads",
    "num_key_value_heads": "kv", "vocab_size": "vocab",
}


def _bytes(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:,.1f} GB"


def _has(r: dict[str, Any], cap: Capability) -> bool:
    if cap is Capability.text:
        return r["model_type"] is not None and r["safety"] is None
    return bool(r[cap.value])


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column.endswith("params"):
        return human(value)
    return str(value)


@app.command("list")
def list_models(
    family: Optional[str] = typer.Option(None, "--family", "-f", help="Only this family, e.g. llama-3.1, code-llama."),
    capability: Optional[Capability] = typer.Option(None, "--capability", "-c", help="Only models with this capability."),
    where: Optional[str] = typer.Option(
        None, "--where", "-w",
        help="Filter expression, e.g. [cyan]\"max_position_embeddings >= 131072 and not instruct\"[/cyan]. "
             "Fields are the JSON keys; operators == != < <= > >= ~ (contains), and/or/not, parentheses; "
             "numbers take K/M/B/T.",
    ),
    sort: Optional[str] = typer.Option(None, "--sort", "-s", help="Sort by a field; prefix '-' for descending, e.g. -params."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv (json/csv carry every field)."),
) -> None:
    """List registry models, filtered and sorted."""
    catalog = load_catalog()
    rows = [row(spec) for spec in catalog]
    fields = set().union(*(r.keys() for r in rows))
    if family:
        families = sorted({r["family"] for r in rows})
        if family not in families:
            raise LlamaZooError(f"unknown family {family!r}; families: {', '.join(families)}")
        rows = [r for r in rows if r["family"] == family]
    if capability:
        rows = [r for r in rows if _has(r, capability)]
    if where:
        predicate = parse_where(where, fields)
        rows = [r for r in rows if predicate(r)]
    if sort:
        key = sort.lstrip("-")
        if key not in fields:
            raise LlamaZooError(f"cannot sort by unknown field {key!r}")
        present = [r for r in rows if r.get(key) is not None]
        missing = [r for r in rows if r.get(key) is None]
        rows = sorted(present, key=lambda r: r[key], reverse=sort.startswith("-")) + missing
    emit(rows, fmt, LIST_COLUMNS, title=f"{len(rows)} Llama models", cell=_cell)


def _kv_table(title: str, items: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left", title_style="bold", box=None)
    table.add_column(style="cyan")
    table.add_column()
    for key, value in items:
        table.add_row(key, "-" if value is None else str(value))
    return table


@app.command()
def show(
    model: str = typer.Argument(..., help="Registry id or Hugging Face repo id."),
    context: Optional[int] = typer.Option(None, min=1, help="Context for KV cache, FLOPs and fit (default: 8192 or the model's maximum)."),
    batch: int = typer.Option(1, min=1, help="Batch size for the GPU fit."),
    gpus: int = typer.Option(1, min=1, help="GPUs the weights and cache are spread over, for the fit."),
    fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json."),
) -> None:
    """Everything about one model: architecture, derived numbers, tokenizer, capabilities, links."""
    catalog = load_catalog()
    spec = catalog.get(model)
    count = derive.param_count(spec)
    ctx = context if context is not None else min(8192, spec.max_context or 8192)
    if fmt is TableOrJson.json:
        data = spec.model_dump(mode="json", exclude_none=True, exclude={"published"})
        data["derived"] = _derived(spec, ctx, batch, gpus)
        # every key of every result, null included: a reader should not have to guess a missing key
        data["published"] = [r.model_dump(mode="json") for r in spec.published]
        print_json(data)
        return

    flat = flatten(spec.architecture.model_dump(exclude_none=True) if spec.architecture else {})
    arch = _kv_table("Architecture", list(flat.items()))
    derived = _kv_table("Derived", _derived_lines(spec, ctx, batch, gpus))
    tok = spec.tokenizer
    tok_items = [] if tok is None else [
        ("kind", tok.kind), ("size", tok.size), ("bos / eos", f"{tok.bos_token_id} / {tok.eos_token_id}"),
        ("chat format", tok.chat_format),
        ("FIM", f"PRE {tok.fim.prefix}, SUF {tok.fim.suffix}, MID {tok.fim.middle}, EOT {tok.fim.eot} "
                f"({'/'.join(tok.fim.modes)})" if tok.fim else None),
    ] + [(name, token_id) for name, token_id in tok.special_tokens.items()]
    caps = spec.capabilities
    safety = caps.safety
    cap_items = [
        ("instruct", caps.instruct), ("code", caps.code), ("vision", caps.vision),
        ("safety", f"{safety.role}" + (f", taxonomy {safety.taxonomy}" if safety.taxonomy else "") if safety else None),
        ("languages", ", ".join(caps.languages)),
    ]
    if safety and safety.taxonomy:
        cap_items += list(catalog.taxonomies[safety.taxonomy].items())
    lineage = spec.derived_from
    about = [
        ("family", spec.family), ("status", spec.status), ("released", spec.release_date),
        ("license", spec.license), ("hf repo", spec.hf_repo), ("aliases", ", ".join(spec.aliases) or None),
        ("derived from", f"{lineage.parent} ({lineage.how}{': ' + lineage.note if lineage.note else ''})" if lineage else None),
        ("training tokens", human(spec.training.tokens) if spec.training.tokens else None),
        ("training data", spec.training.data), ("context at training", spec.training.context_length),
        ("knowledge cutoff", spec.training.knowledge_cutoff),
    ] + [(k, v) for k, v in spec.links.model_dump(exclude_none=True).items()]
    if spec.announced:
        about += [(f"announced {k}", human(v) if isinstance(v, int) else v) for k, v in spec.announced.items()]
    if spec.unverified:
        about.append(("unverified", ", ".join(spec.unverified)))
    if spec.notes:
        about.append(("notes", spec.notes))
    title = f"[bold]{spec.name}[/bold]  [dim]{spec.id}[/dim]"
    if count:
        title += f"  {human(count.total)} params"
    console.print(Panel(_kv_table("About", about), title=title, title_align="left"))
    if spec.architecture:
        console.print(Panel(arch))
        console.print(Panel(derived))
    if tok_items:
        console.print(Panel(_kv_table("Tokenizer", tok_items)))
    console.print(Panel(_kv_table("Capabilities", cap_items)))
    if spec.published:
        console.print(_published_table(spec))


PUBLISHED_COLUMNS = ("table", "category", "benchmark", "shots", "metric", "value", "variant")


def _published_table(spec) -> Table:
    """The model cards' numbers for this checkpoint, grouped by the table they come from."""
    table = Table(title=f"Published results ({len(spec.published)}, from the model cards)", title_justify="left",
                  title_style="bold", header_style="bold")
    for column in PUBLISHED_COLUMNS:
        table.add_column(column, justify="right" if column == "value" else "left")
    groups: dict[tuple[str, str], list] = {}
    for r in spec.published:
        groups.setdefault((r.source.split("#")[0], r.table), []).append(r)
    for (source, name), results in groups.items():
        table.add_section()
        for i, r in enumerate(results):
            first = f"{name} [dim]{source.split(':', 1)[-1]}[/dim]" if i == 0 else ""
            table.add_row(first, r.category or "-", r.benchmark, r.shots or "-", r.metric or "-", str(r.value),
                          r.variant or "-")
    return table


def _derived(spec, ctx: int, batch: int, gpus: int = 1) -> dict[str, Any]:
    count = derive.param_count(spec)
    if count is None:
        return {}
    fits = {gpu: derive.fit_on_gpu(spec, gpu, ctx, batch, gpus=gpus) for gpu in derive.GPUS}
    return {
        "params": count.total,
        "active_params": count.active,
        "embedding_params": count.embedding,
        "non_embedding_params": count.non_embedding,
        "param_groups": count.groups,
        "official_params": spec.official_params.value if spec.official_params else None,
        "weight_bytes": {d: derive.weight_bytes(spec, d) for d in ("bf16", "fp8", "int4")},
        "kv_cache_bytes_per_token_bf16": derive.kv_cache_bytes_per_token(spec, "bf16", ctx),
        "context": ctx,
        "batch": batch,
        "gpus": gpus,
        "forward_flops_per_token": derive.flops_per_token(spec, ctx),
        "fits": {gpu: (f.fits if f else None) for gpu, f in fits.items()},
        "fit_needed_bytes": {gpu: (f.needed_bytes if f else None) for gpu, f in fits.items()},
    }


def _derived_lines(spec, ctx: int, batch: int, gpus: int) -> list[tuple[str, Any]]:
    d = _derived(spec, ctx, batch, gpus)
    if not d:
        return []
    official = d["official_params"]
    match = "" if official is None else (" ✓ matches official" if official == d["params"] else f" ✗ official {official:,}")
    lines = [
        ("parameters", f"{d['params']:,}{match}"),
        ("active per token", f"{d['active_params']:,}" if d["active_params"] != d["params"] else "all"),
        ("embedding / other", f"{human(d['embedding_params'])} / {human(d['non_embedding_params'])}"),
    ]
    if spec.official_params and spec.official_params.checkpoint_tensors:
        lines.append(("checkpoint tensors", f"{spec.official_params.checkpoint_tensors:,} (+ rotary inv_freq buffers)"))
    lines += [(f"weights {dt}", _bytes(b)) for dt, b in d["weight_bytes"].items()]
    kv = d["kv_cache_bytes_per_token_bf16"]
    lines.append(("KV cache / token (bf16)", f"{kv / 1024:,.0f} KiB at {ctx:,} context" if kv else "-"))
    flops = d["forward_flops_per_token"]
    lines.append((f"forward FLOPs / token @ {ctx:,}", human(flops) if flops else "-"))
    for gpu, ok in d["fits"].items():
        if ok is not None:
            needed = _bytes(d["fit_needed_bytes"][gpu])
            where = f"{gpus} x {gpu}" if gpus > 1 else gpu
            lines.append((f"fits {where} (bf16, batch {batch})", f"{'yes' if ok else 'no'} — needs {needed}"))
    return lines


@app.command()
def diff(
    a: str = typer.Argument(..., help="First model."),
    b: str = typer.Argument(..., help="Second model."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv."),
) -> None:
    """Fields that differ between two models, derived numbers included."""
    catalog = load_catalog()
    left, right = catalog.get(a), catalog.get(b)

    def facts(spec) -> dict[str, Any]:
        # published results are a list of tables' numbers, not a fact of the model to diff field by field
        data = flatten(spec.model_dump(mode="json", exclude_none=True, exclude={"published"}))
        data.update({f"derived.{k}": v for k, v in flatten(_derived(spec, 8192, 1)).items()})
        return data

    fa, fb = facts(left), facts(right)
    rows = [{"field": k, left.id: fa.get(k), right.id: fb.get(k)}
            for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    if fmt is not Format.table:
        emit(rows, fmt, {"field": "field", left.id: left.id, right.id: right.id}, "")
        return
    table = Table(title=f"{left.id} vs {right.id}: {len(rows)} differences", header_style="bold")
    for col in ("field", left.id, right.id):
        table.add_column(col)
    for r in rows:
        table.add_row(r["field"], *(_cell(r[c]) for c in (left.id, right.id)))
    console.print(table)


def _cell(value: Any) -> str:
    """A fact as a table shows it: a float without binary noise (3014070681.6, not 3014070681.6000004)."""
    if value is None:
        return "-"
    return str(round(value, 6)) if isinstance(value, float) else str(value)


@app.command()
def tree(root: Optional[str] = typer.Argument(None, help="Start from this model (default: every root).")) -> None:
    """Lineage: which model each was derived from, and how."""
    catalog = load_catalog()
    roots = [catalog.get(root)] if root else [s for s in catalog if s.derived_from is None]

    def order(spec) -> tuple:
        count = derive.param_count(spec)
        return (str(spec.release_date or ""), count.total if count else 0, spec.id)

    def grow(node: Tree, spec) -> None:
        for child in sorted(catalog.children(spec.id), key=order):
            how = child.derived_from.how if child.derived_from else ""
            grow(node.add(f"[bold]{child.id}[/bold] [dim]{how}[/dim]"), child)

    top = Tree("[bold]Llama lineage[/bold]")
    for spec in sorted(roots, key=order):
        grow(top.add(f"[bold]{spec.id}[/bold]"), spec)
    console.print(top)


@app.command()
def export(
    model: str = typer.Argument(..., help="Registry id or Hugging Face repo id."),
    fmt: ExportFormat = typer.Option(ExportFormat.hf_config, "--format", help="hf-config (a transformers config.json), json or yaml (the resolved entry)."),
) -> None:
    """Print a model as a transformers config.json, or its resolved registry entry."""
    from llama_zoo.registry.to_transformers import to_hf_config

    spec = load_catalog().get(model)
    if fmt is ExportFormat.hf_config:
        print(json.dumps(to_hf_config(spec), indent=2))
        return
    data = spec.model_dump(mode="json", exclude_none=True)
    if fmt is ExportFormat.json:
        print_json(data)
    else:
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")


@app.command()
def validate(
    with_transformers: bool = typer.Option(
        False, "--transformers", help="Also build every model on the meta device and compare its parameter count (imports torch)."),
) -> None:
    """Check the registry: schema, invariants, no restated values, parameter counts."""
    from llama_zoo.registry.validate import problems

    catalog = load_catalog()  # schema errors surface here
    found = [str(p) for p in problems(catalog)]
    checked_official = sum(1 for s in catalog if s.official_params)
    checked_meta = 0
    if with_transformers:
        try:
            import transformers
        except ImportError:
            raise LlamaZooError("validate --transformers needs torch and transformers: pip install 'llama-zoo[hf]'") from None

        from llama_zoo.registry.to_transformers import NotExportableError, count_parameters, meta_model

        # transformers doubts Scout's published RoPE factors (high == low); the counts are what matter here.
        transformers.logging.set_verbosity_error()

        for spec in catalog:
            count = derive.param_count(spec)
            if count is None:
                continue
            try:
                n = count_parameters(meta_model(spec))
            except NotExportableError:
                continue
            checked_meta += 1
            if n != count.total:
                found.append(f"{spec.id}: transformers builds {n:,} parameters, the registry computes {count.total:,}")
    for line in found:
        console.print(f"[red]✗[/red] {line}")
    summary = (f"{len(catalog)} models, {checked_official} official parameter counts"
               + (f", {checked_meta} meta-device models" if with_transformers else ""))
    if found:
        console.print(f"[red]{len(found)} problems[/red] ({summary})")
        raise typer.Exit(1)
    console.print(f"[green]✓ registry valid[/green]: {summary}")
