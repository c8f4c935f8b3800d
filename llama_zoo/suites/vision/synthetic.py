"""A seeded generator of visual questions that exist on every machine: charts with value labels
(scored by relaxed accuracy), invoice-like documents (ANLS), shapes to count and colours to name
(VQA accuracy, the one answer given ten times as VQAv2's ten annotators would), and
multiple-choice versions of the same images.

Every answer is computed from the generator's parameters, never read back from pixels, so the key
is right by construction; item ``i`` of seed ``s`` is the same question, answer and image size on
every run (the pixels may differ between matplotlib versions, the answers cannot).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterator

KINDS = ("bar-chart", "line-chart", "invoice", "shapes", "shapes-choice", "chart-choice")
WORDS = ("apples", "pears", "plums", "kiwis", "limes", "figs", "dates", "grapes", "melons", "cherries")
COLOURS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30),
           "purple": (130, 60, 170), "orange": (240, 130, 30)}
SHAPES = ("circle", "square", "triangle")
CUSTOMERS = ("Acme Corp", "Globex Ltd", "Initech", "Umbrella plc", "Hooli Inc", "Vandelay Imports")
LETTERS = "ABCD"


@dataclass(frozen=True)
class VisualQuestion:
    id: str
    image: Any  # a PIL image
    question: str
    answers: tuple[str, ...]  # ten for VQA accuracy (human answers), one or more otherwise
    metric: str  # vqa | anls | relaxed | mcq
    options: tuple[str, ...] = ()  # multiple choice: the option texts, lettered A, B, ...
    about: dict[str, Any] = field(default_factory=dict)  # the parameters the answer came from
    benchmark: str | None = None  # the benchmark it comes from (vqav2, docvqa, ...); None: its metric's


def generate(n: int, seed: int = 0) -> Iterator[VisualQuestion]:
    """``n`` items, cycling through the kinds; item ``i`` depends only on (seed, i)."""
    for i in range(n):
        yield item(i, seed)


def item(i: int, seed: int = 0) -> VisualQuestion:
    """Item ``i`` of seed ``seed`` alone (its id is ``synthetic-{seed}-{i}``)."""
    makers = {"bar-chart": _bar_chart, "line-chart": _line_chart, "invoice": _invoice, "shapes": _shapes,
              "shapes-choice": _shapes_choice, "chart-choice": _chart_choice}
    return makers[KINDS[i % len(KINDS)]](f"synthetic-{seed}-{i}", random.Random(f"{seed}:{i}"))


# --------------------------------------------------------------------------- charts


def _chart_values(rng: random.Random) -> tuple[list[str], list[int]]:
    labels = rng.sample(WORDS, rng.randint(3, 6))
    return labels, [rng.randint(1, 99) for _ in labels]


def _figure_image(draw) -> Any:
    """A matplotlib drawing as an RGB image, rendered straight from the canvas (no PNG round trip)."""
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    fig = Figure(figsize=(4.8, 3.6), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.12, 0.86, 0.78))  # fixed margins: tight_layout would cost more than the drawing
    draw(ax)
    canvas.draw()
    return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")


def _bar_chart(qid: str, rng: random.Random) -> VisualQuestion:
    labels, values = _chart_values(rng)

    def draw(ax) -> None:
        bars = ax.bar(labels, values, color="#4a78c2")
        ax.bar_label(bars, labels=[str(v) for v in values])
        ax.set_ylim(0, max(values) * 1.15)  # room for the value labels
        ax.set_title("Fruit sold")

    pick = rng.randrange(len(labels))
    return VisualQuestion(qid, _figure_image(draw), f"How many {labels[pick]} were sold?", (str(values[pick]),),
                          "relaxed", about={"labels": labels, "values": values})


def _line_chart(qid: str, rng: random.Random) -> VisualQuestion:
    years = list(range(2015, 2015 + rng.randint(4, 7)))
    values = [rng.randint(10, 90) for _ in years]

    def draw(ax) -> None:
        ax.plot(years, values, marker="o")
        ax.set_ylim(0, 100)
        for x, y in zip(years, values):
            ax.annotate(f"{y}%", (x, y), textcoords="offset points", xytext=(0, 6), ha="center")
        ax.set_ylabel("share (%)")

    pick = rng.randrange(len(years))
    return VisualQuestion(qid, _figure_image(draw), f"What was the share in {years[pick]}?", (f"{values[pick]}%",),
                          "relaxed", about={"years": years, "values": values})


def _chart_choice(qid: str, rng: random.Random) -> VisualQuestion:
    labels, values = _chart_values(rng)
    values = sorted(set(values), reverse=True)[: len(labels)]
    labels = labels[: len(values)]

    def draw(ax) -> None:
        bars = ax.bar(labels, values, color="#c2784a")
        ax.bar_label(bars, labels=[str(v) for v in values])
        ax.set_ylim(0, max(values) * 1.15)

    best = labels[values.index(max(values))]
    options = tuple(rng.sample(labels, min(4, len(labels))))
    if best not in options:
        options = (best,) + options[:-1]
    options = tuple(rng.sample(options, len(options)))
    return VisualQuestion(qid, _figure_image(draw), "Which fruit has the highest value?",
                          (LETTERS[options.index(best)],), "mcq", options, {"labels": labels, "values": values})


# --------------------------------------------------------------------------- documents


def _invoice(qid: str, rng: random.Random) -> VisualQuestion:
    from PIL import Image, ImageDraw

    fields = {
        "Invoice number": f"INV-{rng.randint(10000, 99999)}",
        "Date": f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "Customer": rng.choice(CUSTOMERS),
        "Total": f"${rng.randint(10, 9999)}.{rng.randint(0, 99):02d}",
    }
    image = Image.new("RGB", (480, 320), "white")
    pen = ImageDraw.Draw(image)
    pen.text((20, 16), "INVOICE", fill="black")
    for row, (name, value) in enumerate(fields.items()):
        pen.text((20, 60 + 40 * row), f"{name}:", fill="black")
        pen.text((200, 60 + 40 * row), value, fill="black")
    asked = rng.choice(list(fields))
    return VisualQuestion(qid, image, f"What is the {asked.lower()} on this invoice?", (fields[asked],), "anls",
                          about=fields)


# --------------------------------------------------------------------------- shapes


def _draw_shapes(rng: random.Random) -> tuple[Any, dict[str, int], dict[str, str]]:
    """Non-overlapping shapes on a grid: counts per shape, and the colour of each shape drawn once."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (384, 384), "white")
    pen = ImageDraw.Draw(image)
    cells = rng.sample(range(16), rng.randint(3, 9))
    counts = {s: 0 for s in SHAPES}
    colours: dict[str, str] = {}
    for cell in cells:
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        counts[shape] += 1
        if counts[shape] == 1:  # "the circle" must be one circle: a colour is asked only of a shape drawn once
            colours[shape] = colour
        else:
            colours.pop(shape, None)
        x, y = 96 * (cell % 4) + 16, 96 * (cell // 4) + 16
        box = (x, y, x + 64, y + 64)
        if shape == "circle":
            pen.ellipse(box, fill=COLOURS[colour])
        elif shape == "square":
            pen.rectangle(box, fill=COLOURS[colour])
        else:
            pen.polygon([(x + 32, y), (x, y + 64), (x + 64, y + 64)], fill=COLOURS[colour])
    return image, counts, colours


def _shapes(qid: str, rng: random.Random) -> VisualQuestion:
    image, counts, colours = _draw_shapes(rng)
    if colours and rng.random() < 0.5:
        shape = rng.choice(sorted(colours))
        return VisualQuestion(qid, image, f"What colour is the {shape}?", (colours[shape],) * 10, "vqa",
                              about={"counts": counts, "colours": colours})
    shape = rng.choice(SHAPES)
    return VisualQuestion(qid, image, f"How many {shape}s are there?", (str(counts[shape]),) * 10, "vqa",
                          about={"counts": counts, "colours": colours})


def _shapes_choice(qid: str, rng: random.Random) -> VisualQuestion:
    image, counts, _ = _draw_shapes(rng)
    shape = rng.choice(SHAPES)
    right = counts[shape]
    wrong = rng.sample([v for v in range(0, 10) if v != right], 3)
    options = tuple(str(v) for v in rng.sample([right, *wrong], 4))
    return VisualQuestion(qid, image, f"How many {shape}s are there?", (LETTERS[options.index(str(right))],), "mcq",
                          options, {"counts": counts})
