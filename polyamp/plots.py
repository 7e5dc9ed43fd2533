"""Plots for people: confusion matrices (a rich table and a PNG) and piano rolls of transcriptions (PNG).

The confusion functions take a square count matrix (rows = reference class, columns = predicted class) and its
labels, e.g. ``timbre_metrics(...)["confusion"]`` and ``FAMILY_NAMES``; :func:`plot_piano_roll`
takes notes grouped by track. matplotlib is optional (``pip install 'polyamp[plot]'``) and
imported only when a plot is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyamp.errors import ConfigError, MissingDependencyError, OutputExistsError
from polyamp.fileio import atomic_output


def _checked_matrix(confusion: Any, labels: Sequence[str]) -> np.ndarray:
    """int64 [K, K] counts; raises ValueError on a bad shape, label count or negative counts."""
    matrix = np.asarray(confusion, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"a confusion matrix must be square and non-empty, got shape {matrix.shape}")
    if len(labels) != matrix.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {matrix.shape[0]}x{matrix.shape[0]} confusion matrix")
    if not np.isfinite(matrix).all() or (matrix < 0).any() or (np.round(matrix) != matrix).any():
        raise ValueError("a confusion matrix must hold non-negative whole counts")
    return matrix.astype(np.int64)


def _kept(matrix: np.ndarray, hide_empty: bool) -> np.ndarray:
    """Indices of the classes to show: all, or those with a reference or a predicted count."""
    if not hide_empty:
        return np.arange(len(matrix))
    kept = np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))
    return kept if len(kept) else np.arange(len(matrix))


def row_normalised(confusion: Any) -> np.ndarray:
    """float64 [K, K]: each row divided by its total (rows without counts stay 0)."""
    matrix = np.asarray(confusion, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


COLUMN_LABELS = {
    "brass": "brs",
    "flute": "flt",
    "guitar": "gtr",
    "keyboard": "key",
    "mallet": "mlt",
    "organ": "org",
    "string": "str",
    "synth_lead": "syn",
    "vocal": "voc",
    "other": "oth",
}
"""Short row and column labels of the instrument families, so the 12-family table fits 80 columns."""


def column_label(label: str) -> str:
    """The short header of ``label`` (:data:`COLUMN_LABELS`, else the label itself)."""
    return COLUMN_LABELS.get(label, label)


def confusion_table(
    confusion: Any,
    labels: Sequence[str],
    title: str = "Instrument family confusion (rows: reference, columns: predicted)",
    hide_empty: bool = True,
) -> Any:
    """A ``rich.table.Table`` of counts with each row's total and recall.

    Diagonal counts are green, other non-zero counts red, zeros a dim dot. With ``hide_empty``
    the classes with no reference and no predicted count are left out. Families get short row and
    column labels (:data:`COLUMN_LABELS`, spelled out in the caption) so twelve fit 80 columns.
    """
    from rich.table import Table

    matrix = _checked_matrix(confusion, labels)
    kept = _kept(matrix, hide_empty)
    total = int(matrix.sum())
    accuracy = float(np.trace(matrix) / total) if total else 0.0
    headers = [column_label(str(labels[index])) for index in kept]
    legend = ", ".join(
        f"{header} = {labels[index]}" for header, index in zip(headers, kept, strict=True) if header != labels[index]
    )
    caption = f"accuracy {accuracy:.1%} over {total} notes" + (f"\n{legend}" if legend else "")
    table = Table(
        title=title,
        caption=caption,
        header_style="bold",
        box=None,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("ref", style="bold", no_wrap=True)
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("total", justify="right")
    table.add_column("recall", justify="right")
    for row in kept:
        cells = []
        for column in kept:
            count = int(matrix[row, column])
            if count == 0:
                cells.append("[dim]·[/dim]")
            elif row == column:
                cells.append(f"[green]{count}[/green]")
            else:
                cells.append(f"[red]{count}[/red]")
        row_total = int(matrix[row].sum())
        recall = f"{matrix[row, row] / row_total:.1%}" if row_total else "-"
        table.add_row(column_label(str(labels[row])), *cells, str(row_total), recall)
    return table


def plot_confusion_matrix(
    confusion: Any,
    labels: Sequence[str],
    path: str | os.PathLike[str],
    overwrite: bool = False,
    title: str = "Instrument family confusion",
    hide_empty: bool = False,
) -> Path:
    """Writes a PNG heat map of ``confusion`` [K, K] (rows = reference, columns = predicted).

    Colours are row-normalised (share of each reference class), every non-zero cell shows its
    count, row labels show the row total, the title the overall accuracy. The file is written
    atomically; an existing ``path`` raises OutputExistsError unless ``overwrite``. Needs
    matplotlib (MissingDependencyError otherwise). Returns the path.
    """
    matrix = _checked_matrix(confusion, labels)
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"the confusion plot {path} must be a .png file; choose a name ending in .png")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "plotting the confusion matrix needs matplotlib, which is not installed; run `pip install matplotlib`"
        ) from None

    kept = _kept(matrix, hide_empty)
    shown = matrix[np.ix_(kept, kept)]
    shares = row_normalised(matrix)[np.ix_(kept, kept)]
    names = [str(labels[index]) for index in kept]
    size = len(kept)
    total = int(matrix.sum())
    accuracy = float(np.trace(matrix) / total) if total else 0.0

    side = max(4.0, 0.6 * size + 2.5)
    figure = Figure(figsize=(side + 1.2, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.03)
    colorbar.set_label("share of the reference row")
    font_size = 9 if size <= 8 else 8 if size <= 14 else 6
    for row in range(size):
        for column in range(size):
            count = int(shown[row, column])
            if count == 0:
                continue
            colour = "white" if shares[row, column] > 0.5 else "black"
            weight = "bold" if row == column else "normal"
            axes.text(
                column, row, str(count), ha="center", va="center", color=colour, fontsize=font_size, fontweight=weight
            )
    axes.set_xticks(range(size), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font_size + 1)
    row_names = [f"{name} ({int(shown[index].sum())})" for index, name in enumerate(names)]
    axes.set_yticks(range(size), row_names, fontsize=font_size + 1)
    axes.set_xlabel("predicted")
    axes.set_ylabel("reference (row total)")
    axes.set_xticks(np.arange(size + 1) - 0.5, minor=True)
    axes.set_yticks(np.arange(size + 1) - 0.5, minor=True)
    axes.grid(which="minor", color="0.85", linewidth=0.5)
    axes.tick_params(which="minor", length=0)
    axes.set_title(f"{title}\naccuracy {accuracy:.1%} over {total} notes", fontsize=11)

    with atomic_output(path) as stream:
        figure.savefig(stream, format="png", dpi=120, bbox_inches="tight", pad_inches=0.2)
    return path


def plot_family_confusion(result: Any, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """The family confusion PNG of an eval result: of every reference note (timbre) or of the notes the
    agnostic transcription matched (full); ConfigError for a result without families."""
    from polyamp.notes.families import FAMILY_NAMES

    timbre = getattr(result, "timbre", None)
    full = getattr(result, "full", None)
    if timbre:
        matrix, title = timbre["confusion"], "Instrument family confusion (reference notes)"
    elif full and "family_confusion" in full:
        matrix = full["family_confusion"]["matrix"]
        title = "Instrument family confusion (notes matched by pitch and onset)"
    else:
        raise ConfigError("this evaluation has no family confusion matrix to plot")
    return plot_confusion_matrix(matrix, list(FAMILY_NAMES), path, overwrite=overwrite, title=title, hide_empty=True)


# ------------------------------------------------------------------------------------------------
# Piano rolls of transcriptions.

PIANO_ROLL_SIZE_IN = (12.0, 6.0)
PIANO_ROLL_DPI = 100
PIANO_ROLL_SIZE_PX = (1200, 600)
"""Width and height in pixels of every piano-roll PNG (12 x 6 inches at 100 dpi)."""

FAMILY_COLOURS = (
    "#1f77b4",  # bass
    "#ff7f0e",  # brass
    "#17becf",  # flute
    "#8c564b",  # guitar
    "#2ca02c",  # keyboard
    "#bcbd22",  # mallet
    "#9467bd",  # organ
    "#d62728",  # reed
    "#e377c2",  # string
    "#7f7f7f",  # synth_lead
    "#aec7e8",  # vocal
    "#393b79",  # other
)
"""One colour per family (FAMILY_NAMES order), the same in every plot."""

SINGLE_TRACK_COLOUR = "#1f77b4"
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def require_matplotlib(purpose: str = "--plot") -> None:
    """MissingDependencyError (one line, how to install) unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"{purpose} needs matplotlib, which is not installed; run `pip install 'polyamp[plot]'` "
            "(or `pip install matplotlib`)"
        ) from None


def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI pitch: 60 -> ``C4``, 21 -> ``A0``."""
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _note_times(note: Any) -> tuple[float, float]:
    if hasattr(note, "start_s"):
        return float(note.start_s), float(note.end_s)
    return float(note.start_time), float(note.end_time)


def _pitch_limits(pitches: list[int]) -> tuple[float, float]:
    """y range: the notes' pitches plus 2 semitones each side, at least two octaves, within MIDI 0-127."""
    if not pitches:
        return 20.5, 108.5
    low, high = min(pitches) - 2, max(pitches) + 2
    if high - low < 24:
        centre = (low + high) / 2
        low, high = centre - 12, centre + 12
    return max(low, -0.5) - 0.5, min(high, 127.5) + 0.5


def plot_piano_roll(
    tracks: Mapping[str, Sequence[Any]],
    path: str | os.PathLike[str],
    duration_s: float | None = None,
    title: str = "",
    colours: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes a PNG piano roll of ``tracks`` (``{label: notes}``): time in seconds across, MIDI pitch up.

    Notes are bars coloured by track (``colours[label]``, family colours by default) with a legend
    giving each track's note count; louder notes are more opaque. The x axis spans 0 to
    ``duration_s`` (default: the last note end), the y axis the notes' pitches (labelled at every C,
    C4 = MIDI 60). The image is always :data:`PIANO_ROLL_SIZE_PX`. Written atomically; an existing
    ``path`` raises OutputExistsError unless ``overwrite``. Needs matplotlib (MissingDependencyError).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file already exists: {path} (use --overwrite to replace it)")
    require_matplotlib()
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from polyamp.notes.families import FAMILY_NAMES

    palette = dict(zip(FAMILY_NAMES, FAMILY_COLOURS, strict=True))
    palette.update(colours or {})
    pitches = [int(note.pitch) for notes in tracks.values() for note in notes]
    last_end = max((_note_times(note)[1] for notes in tracks.values() for note in notes), default=0.0)
    end_s = max(float(duration_s or 0.0), last_end, 1e-3)

    figure = Figure(figsize=PIANO_ROLL_SIZE_IN, dpi=PIANO_ROLL_DPI, layout="constrained")
    axes = figure.add_subplot()
    handles = []
    for index, (label, notes) in enumerate(tracks.items()):
        if not notes:
            continue
        colour = palette.get(label, FAMILY_COLOURS[index % len(FAMILY_COLOURS)])
        boxes, faces = [], []
        for note in notes:
            start_s, stop_s = _note_times(note)
            low, high = note.pitch - 0.4, note.pitch + 0.4
            boxes.append(((start_s, low), (stop_s, low), (stop_s, high), (start_s, high)))
            faces.append(to_rgba(colour, 0.35 + 0.65 * min(max(int(note.velocity), 1), 127) / 127))
        axes.add_collection(PolyCollection(boxes, facecolors=faces, edgecolors=[to_rgba(colour)], linewidths=0.3))
        handles.append(Patch(color=colour, label=f"{label} ({len(notes)})"))
    low, high = _pitch_limits(pitches)
    axes.set_xlim(0.0, end_s)
    axes.set_ylim(low, high)
    cs = [pitch for pitch in range(0, 128) if pitch % 12 == 0 and low <= pitch <= high]
    axes.set_yticks(cs, [pitch_name(pitch) for pitch in cs])
    axes.grid(axis="y", color="0.85", linewidth=0.6)
    axes.grid(axis="x", color="0.92", linewidth=0.5)
    axes.set_axisbelow(True)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("pitch")
    if handles:
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        axes.text(0.5, 0.5, "no notes", transform=axes.transAxes, ha="center", va="center", color="0.5", fontsize=14)
    axes.set_title(title or f"{len(pitches)} notes, {end_s:.1f} s", fontsize=11)
    with atomic_output(path) as stream:
        figure.savefig(stream, format="png", dpi=PIANO_ROLL_DPI)
    return path
