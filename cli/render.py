"""Rich rendering for the CLI: progress bars and result tables (stderr for progress, stdout for results)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

stdout = Console()
stderr = Console(stderr=True)

PLAIN_PROGRESS_EVERY_S = 60.0
"""When stderr is not a terminal, training writes one progress line this often (and at the last step)."""


def _progress(*extra: Any) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )


@contextlib.contextmanager
def training_progress() -> Iterator[Callable[[int, int, dict[str, float], float], None]]:
    """Yields ``progress(step, num_steps, losses, steps_per_second)``."""
    progress = _progress(TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} steps/s"))
    task = progress.add_task("training", total=None, loss="-", rate="-")
    started = False
    plain = not stderr.is_terminal  # a log file or a pipe: no live bar, so write a line now and then
    last_line = float("-inf")

    def update(step: int, num_steps: int, losses: dict[str, float], rate: float) -> None:
        nonlocal started, last_line
        loss = losses.get("total", float("nan"))
        if plain:
            now = time.monotonic()
            if now - last_line >= PLAIN_PROGRESS_EVERY_S or step >= num_steps:
                last_line = now
                parts = " ".join(f"{name} {value:.4f}" for name, value in losses.items() if name != "total")
                stderr.print(
                    f"step {step}/{num_steps} loss {loss:.4f} ({parts}) {rate:.2f} steps/s",
                    highlight=False,
                    soft_wrap=True,
                )
            return
        if not started:  # draw from the first step on, once data and model are ready
            progress.start()
            started = True
        progress.update(task, completed=step, total=num_steps, loss=f"{loss:.4f}", rate=f"{rate:.2f}")

    try:
        yield update
    finally:
        if started:
            progress.stop()


def print_training_result(result: Any) -> None:
    stopped = " (stopped early; run the same command to resume)" if result.interrupted else ""
    losses = ", ".join(f"{name} {value:.4f}" for name, value in result.last_losses.items())
    if getattr(result, "started_from", None):
        stdout.print(f"started from: {'; '.join(result.started_from)}")
    stdout.print(f"trained steps {result.first_step} -> {result.last_step}{stopped}; checkpoints in {result.run_dir}")
    if losses:
        stdout.print(f"last losses: {losses}")


@contextlib.contextmanager
def evaluation_progress(total: int | None) -> Iterator[Callable[[int, int | None, str], None]]:
    progress = _progress(TextColumn("{task.fields[example]}"))
    with progress:
        task = progress.add_task("evaluating", total=total, example="")

        def update(done: int, limit: int | None, example_id: str) -> None:
            progress.update(task, completed=done, example=example_id)

        yield update


METRIC_ROWS = (
    ("Frame", "frame"),
    ("Note (onset)", "note"),
    ("Note with offset", "note_with_offsets"),
    ("Note with velocity", "note_with_velocity"),
    ("Note with offset & velocity", "note_with_offsets_and_velocity"),
)


def print_evaluation(result: Any) -> None:
    if getattr(result, "timbre", None) is not None:
        print_timbre_evaluation(result)
        return
    if getattr(result, "full", None) is not None:
        print_full_evaluation(result)
        return
    table = Table(title=f"mir_eval metrics, mean over {len(result.per_example)} example(s), step {result.step}")
    for column in ("metric", "precision", "recall", "F1"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for label, prefix in METRIC_ROWS:
        values = [result.average.get(f"{prefix}_{kind}") for kind in ("precision", "recall", "f1")]
        if all(value is None for value in values):
            continue
        table.add_row(label, *(f"{value:.4f}" if value is not None else "-" for value in values))
    stdout.print(table)
    stdout.print(f"metrics JSON: {result.output_json}")


class _BatchProgress:
    """Rich progress for ``polyamp transcribe``: one bar for the batch (files), one per file (frames),
    and a line per file (written, skipped or failed). Implements ``polyamp.batch_transcription.BatchObserver``."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.batch_task = progress.add_task("files", total=total)
        self.file_task: Any = None

    def started(self, audio: Any, index: int, total: int) -> Callable[[int, int], None]:
        name = audio.name if len(audio.name) <= 40 else audio.name[:37] + "..."
        self.file_task = self.progress.add_task(f"  {name}", total=None)
        task = self.file_task

        def update(done: int, total_frames: int) -> None:
            self.progress.update(task, completed=done, total=total_frames)

        return update

    def finished(self, result: Any) -> None:
        if self.file_task is not None:
            self.progress.remove_task(self.file_task)
            self.file_task = None
        self.progress.advance(self.batch_task)
        console = self.progress.console
        if result.status == "failed":
            console.print(
                f"failed: {result.audio}: {result.error}", style="red", markup=False, highlight=False, soft_wrap=True
            )
        elif result.status == "skipped":
            console.print(
                f"skipped {result.audio}: its outputs exist (--overwrite redoes it)",
                style="dim",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        else:
            console.print(_written_line(result), markup=False, highlight=False, soft_wrap=True)


def _written_line(result: Any) -> str:
    """``song.wav -> song.polyamp.mid (42 notes; keyboard 30, bass 12) + .csv .png``."""
    tracks = result.tracks
    if list(tracks) == ["notes"]:
        counts = f"{result.num_notes} notes"
    else:
        per_track = ", ".join(f"{name} {count}" for name, count in tracks.items())
        counts = f"{result.num_notes} notes; {per_track or 'no tracks'}"
    midi = next(path for path in result.written + result.kept if path.suffix == ".mid")
    line = f"{result.audio} -> {midi} ({counts})"
    extras = [path.suffix for path in result.written if path != midi]
    if extras:
        line += " + " + " ".join(extras)
    if result.kept:
        line += f"; kept existing {' '.join(path.suffix for path in result.kept)}"
    return line


@contextlib.contextmanager
def batch_progress(total: int) -> Iterator[_BatchProgress]:
    """Yields the observer that draws the batch and per-file bars of ``total`` files (on stderr)."""
    progress = _progress()
    with progress:
        yield _BatchProgress(progress, total)


def print_batch_summary(report: Any) -> None:
    """Counts of written / skipped / failed files (stdout) and a table of the failed files with their reason."""
    if report.left_out:
        names = ", ".join(str(path) for path in report.left_out[:5]) + (" ..." if len(report.left_out) > 5 else "")
        stdout.print(
            f"left out {len(report.left_out)} input(s) that are --sonify outputs of other inputs: {names}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    stdout.print(
        f"transcribed {len(report.written)}, skipped {len(report.skipped)} (outputs exist), "
        f"failed {len(report.failed)} of {len(report.results)} file(s)",
        highlight=False,
    )
    if not report.failed:
        return
    table = Table(title=f"{len(report.failed)} file(s) failed", title_justify="left", show_lines=False)
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for result in report.failed:
        table.add_row(Text(str(result.audio)), Text(result.error))
    stdout.print(table)


@contextlib.contextmanager
def simple_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    progress = _progress()
    with progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@contextlib.contextmanager
def spinner(description: str) -> Iterator[None]:
    """A spinner with elapsed time for jobs that report no progress of their own (Beam pipelines)."""
    from rich.progress import SpinnerColumn

    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(), console=stderr)
    with progress:
        progress.add_task(description, total=None)
        yield


def print_skipped(skipped: list[str], limit: int = 20) -> None:
    """The items a data job skipped, one line each (at most ``limit``), and their count."""
    if not skipped:
        return
    stderr.print(f"[yellow]skipped {len(skipped)} item(s):[/yellow]")
    for message in skipped[:limit]:
        stderr.print(f"  - {message}", markup=False, highlight=False)
    if len(skipped) > limit:
        stderr.print(f"  ... and {len(skipped) - limit} more")


def print_timbre_evaluation(result: Any) -> None:
    """Family accuracy, macro-F1, per-family P/R/F1 and the confusion matrix as rich tables."""
    import numpy as np

    from polyamp.notes.families import FAMILY_NAMES
    from polyamp.plots import confusion_table

    timbre = result.timbre
    stdout.print(
        f"Timbre: family accuracy {timbre['accuracy']:.4f}, macro-F1 {timbre['macro_f1']:.4f} "
        f"over {timbre['num_notes']} notes of {len(result.per_example)} example(s), step {result.step}"
    )
    table = Table(title="per family")
    for column in ("family", "precision", "recall", "F1", "notes"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for name, row in timbre["per_family"].items():
        if row.get("support", 0) or row.get("predicted", 0):
            table.add_row(
                name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"])
            )
    stdout.print(table)
    stdout.print(confusion_table(np.asarray(timbre["confusion"]), list(FAMILY_NAMES)))
    stdout.print(f"metrics JSON: {result.output_json}")


def print_full_evaluation(result: Any) -> None:
    """Agnostic mir_eval metrics, multi-instrument note P/R/F1, leakage and per-family P/R/F1 as rich tables."""
    from polyamp.multi_metrics import MULTI_METRIC_GROUPS

    multi = result.full
    pooled = multi["pooled"]
    table = Table(title=f"Full model over {len(result.per_example)} example(s), step {result.step}")
    for column in ("metric", "precision", "recall", "F1"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for label, prefix in METRIC_ROWS[:3]:
        values = [result.average.get(f"{prefix}_{kind}") for kind in ("precision", "recall", "f1")]
        table.add_row(f"Agnostic {label.lower()}", *(f"{value:.4f}" if value is not None else "-" for value in values))
    for label, prefix in MULTI_METRIC_GROUPS:
        values = [pooled.get(f"{prefix}_{kind}") for kind in ("precision", "recall", "f1")]
        table.add_row(label, *(f"{value:.4f}" if value is not None else "-" for value in values))
    stdout.print(table)
    if "leakage_note_share" in pooled:
        stdout.print(
            f"family accuracy of matched notes {pooled.get('matched_note_family_accuracy', 0.0):.4f}; leakage: "
            f"{pooled['leakage_tracks_per_instrument']:.2f} tracks per instrument, "
            f"{pooled['leakage_note_share']:.4f} of matched notes outside the majority track"
        )
    families = Table(title="per family (multi-instrument note, onset only)")
    for column in ("family", "precision", "recall", "F1", "reference", "estimated"):
        families.add_column(column, justify="left" if column == "family" else "right")
    for name, row in multi["per_family"].items():
        families.add_row(
            name,
            f"{row['note_precision']:.3f}",
            f"{row['note_recall']:.3f}",
            f"{row['note_f1']:.3f}",
            str(int(row["num_reference_notes"])),
            str(int(row["num_estimated_notes"])),
        )
    stdout.print(families)
    stdout.print(f"metrics JSON: {result.output_json}")
