"""Confusion matrices for people: a rich table for the terminal and a PNG plot (matplotlib).

Both take a square count matrix (rows = reference class, columns = predicted class) and its
labels, e.g. ``timbre_metrics(...)["confusion"]`` and ``FAMILY_NAMES``. matplotlib is optional
and imported only when a plot is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
