"""Value labels beside points of a plot, placed so that none overlaps another, a marked point, or the axes' edge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

GAP = 5.0  # points between a point and its label
STEP = 11.0  # points between the rungs of labels stacked above or below a point
RUNGS = 6  # how far a crowded label may move away from its point (a thin line then leads back to it)
MARKER_PX = 5.0  # half the size of the box a marked point occupies, in pixels
PAD = 0.1  # the white backing around a label, in font sizes: it reads clearly over lines and the curve


@dataclass(frozen=True)
class ValueLabel:
    """A text to write beside the point (x, y), in data coordinates."""

    x: float
    y: float
    text: str
    colour: str
    bold: bool = False


def _candidates() -> list[tuple[float, float, str, str]]:
    """Offsets in points, with the text's alignment, nearest first: above right, below right, above left, below left."""
    found = []
    for rung in range(RUNGS):
        lift = GAP + STEP * rung
        found += [(GAP, lift, "left", "bottom"), (GAP, -lift, "left", "top"), (-GAP, lift, "right", "bottom"),
                  (-GAP, -lift, "right", "top")]
    return found


def place_labels(ax, labels: Sequence[ValueLabel], fontsize: float = 8) -> list:
    """Write each label beside its point, in the order given (the first gets the nearest free place).

    Call once the figure is laid out (the layout engine run, then fixed) with the axes' limits final:
    placement works in pixels. A label takes the first candidate place whose box stays inside the
    axes and overlaps no label placed before it and no labelled point; if none is free, the place
    that overlaps least. A point outside the axes is labelled at their edge. A label moved more than
    a rung from its point gets a thin line back to it. Returns the Annotations, in the order of `labels`.
    """
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    labels = [_within(ax, label, frame) for label in labels]
    points = [ax.transData.transform((label.x, label.y)) for label in labels]
    taken = [_box(x - MARKER_PX, y - MARKER_PX, x + MARKER_PX, y + MARKER_PX) for x, y in points]
    placed = []
    for label in labels:
        best, best_cost = None, None
        for place in _candidates():
            box = text_box(_annotate(ax, label, place, fontsize), renderer, remove=True)
            cost = _outside(box, frame) * 1e6 + sum(_overlap(box, other) for other in taken)
            if best_cost is None or cost < best_cost:
                best, best_cost = place, cost
            if cost == 0:
                break
        text = _annotate(ax, label, best, fontsize, leader=abs(best[1]) > GAP + STEP)
        text.set_in_layout(False)
        taken.append(text_box(text, renderer))
        placed.append(text)
    return placed


def _within(ax, label: ValueLabel, frame) -> ValueLabel:
    """The label moved onto the axes' edge where its point lies outside them (a value on the clipped diverged tail)."""
    x, y = ax.transData.transform((label.x, label.y))
    inside = (min(max(x, frame.x0), frame.x1), min(max(y, frame.y0), frame.y1))
    if inside == (x, y):
        return label
    x, y = ax.transData.inverted().transform(inside)
    return replace(label, x=float(x), y=float(y))


def text_box(text, renderer, remove: bool = False):
    """The box of an annotation's text alone (not its leader line), in pixels; `remove` takes the text off the axes."""
    from matplotlib.text import Text

    text.update_positions(renderer)  # where the offset puts the text (Annotation's own extent does this, and adds the line)
    box = Text.get_window_extent(text, renderer)
    if remove:
        text.remove()
    return box


def _annotate(ax, label: ValueLabel, place: tuple[float, float, str, str], fontsize: float, leader: bool = False):
    dx, dy, ha, va = place
    arrow = {"arrowstyle": "-", "color": label.colour, "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3} if leader else None
    return ax.annotate(label.text, (label.x, label.y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                       fontsize=fontsize, color=label.colour, fontweight="bold" if label.bold else "normal",
                       annotation_clip=False, arrowprops=arrow, zorder=7,
                       bbox={"boxstyle": f"square,pad={PAD}", "facecolor": "white", "edgecolor": "none", "alpha": 0.75})


def _box(x0: float, y0: float, x1: float, y1: float):
    from matplotlib.transforms import Bbox

    return Bbox.from_extents(x0, y0, x1, y1)


def _overlap(a, b) -> float:
    """The area two boxes share, in square pixels (0 when they only touch)."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _outside(box, frame) -> float:
    """How far, in pixels, a box reaches past the frame on its worst side (0 when it lies inside)."""
    return max(0.0, frame.x0 - box.x0, box.x1 - frame.x1, frame.y0 - box.y0, box.y1 - frame.y1)
