"""Batch transcription: many audio files in, MIDI and optional companion files out, robust to bad files.

This module runs the batch; its parts live in :mod:`polyamp.batch` (outputs, engines, writers) and
are re-exported here.

For every input ``<folder>/<stem>.<ext>`` the outputs are ``<output dir or folder>/<stem><suffix>``
plus:

======================  ==========  ==========================================================
output                  extension   written by
======================  ==========  ==========================================================
MIDI (always)           ``.mid``    :func:`~polyamp.notes.midi.write_midi` (one track) or
                                    :func:`~polyamp.notes.multitrack.write_multitrack_midi`
note events             ``.csv``    :mod:`polyamp.notes.note_events`
model outputs           ``.npz``    :mod:`polyamp.model_outputs`
piano-roll plot         ``.png``    :func:`polyamp.plots.plot_piano_roll`
sonification            ``.wav``    :class:`polyamp.synth.sonify.Sonifier` (from the written MIDI)
======================  ==========  ==========================================================

Rules:

* Every file is written atomically (temporary file in the same folder, then a rename), so a killed
  run never leaves a partial output.
* Without ``overwrite`` an existing output is never touched. An input whose requested outputs all
  exist is skipped (so re-running an interrupted batch resumes it); when only some exist, the file
  is transcribed again and only the missing ones are written (the WAV is rendered from the MIDI
  file on disk). With ``overwrite`` every requested output is written anew.
* An input that fails to read or transcribe (an :class:`~polyamp.errors.InputFileError` or any
  other :class:`~polyamp.errors.PolyampError` except configuration and checkpoint errors and
  failed writes, which stop the batch) is recorded with a one-line reason and the batch goes on;
  :attr:`BatchReport.exit_code` is then ``InputFileError.exit_code`` (2).
* Configuration problems (an unknown hparam, a missing checkpoint, a bad family name, a threshold
  out of range, matplotlib, FluidSynth or a SoundFont missing, two inputs with the same output)
  raise before any file is transcribed.
* An input that is the would-be ``.wav`` output of another input (a sonification written by an
  earlier ``--sonify`` run into the input folder) is left out of the batch.

Library use (``polyamp transcribe`` does the same, with progress bars)::

    from polyamp.batch_transcription import OutputOptions, load_engine, plan_batch, transcribe_batch
    from polyamp.transcription import expand_audio_inputs

    options = OutputOptions(output_dir=Path("out"), note_events=True, plot=True)
    planned, _ = plan_batch(expand_audio_inputs(["recordings/"]), options)
    report = transcribe_batch(load_engine("melodic", "models", "my-run"), planned, options)
    failed = {result.audio: result.error for result in report.failed}
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from polyamp.batch.engines import (
    FileTranscriber,
    ProgressFn,
    Transcribed,
    full_engine,
    load_engine,
    melodic_engine,
    merge_hparams_json,
    threshold_overrides,
    timbre_engine,
)
from polyamp.batch.outputs import (
    OutputOptions,
    OutputPaths,
    PlannedFile,
    check_output_options,
    output_paths_for,
    plan_batch,
)
from polyamp.batch.writers import (
    model_output_arrays,
    open_sonifier,
    write_midi_output,
    write_note_events_output,
    write_outputs,
    write_plot_output,
)
from polyamp.errors import CheckpointError, ConfigError, InputFileError, PolyampError

__all__ = [
    "BatchObserver",
    "BatchReport",
    "FileResult",
    "FileTranscriber",
    "OutputOptions",
    "OutputPaths",
    "PlannedFile",
    "ProgressFn",
    "Transcribed",
    "check_output_options",
    "full_engine",
    "load_engine",
    "melodic_engine",
    "merge_hparams_json",
    "model_output_arrays",
    "needs_transcription",
    "one_line",
    "open_sonifier",
    "output_paths_for",
    "plan_batch",
    "process_file",
    "threshold_overrides",
    "timbre_engine",
    "transcribe_batch",
    "write_midi_output",
    "write_note_events_output",
    "write_outputs",
    "write_plot_output",
]

WRITTEN, SKIPPED, FAILED = "written", "skipped", "failed"


def needs_transcription(item: PlannedFile, options: OutputOptions) -> bool:
    """True when ``item`` must be transcribed: ``overwrite``, or some requested output is missing."""
    return options.overwrite or bool(item.outputs.missing())


@dataclasses.dataclass
class FileResult:
    """How one input went: ``status`` written / skipped / failed, the ``written`` and ``kept`` (existing,
    untouched) outputs, the MIDI file's note count per track, the one-line ``error``, wall ``seconds``."""

    audio: Path
    status: str
    written: list[Path] = dataclasses.field(default_factory=list)
    kept: list[Path] = dataclasses.field(default_factory=list)
    tracks: dict[str, int] = dataclasses.field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0

    @property
    def num_notes(self) -> int:
        return sum(self.tracks.values())


@dataclasses.dataclass
class BatchReport:
    """Every input's :class:`FileResult` in input order, and the inputs left out as sonifications."""

    results: list[FileResult]
    left_out: list[Path] = dataclasses.field(default_factory=list)

    def with_status(self, status: str) -> list[FileResult]:
        return [result for result in self.results if result.status == status]

    @property
    def written(self) -> list[FileResult]:
        return self.with_status(WRITTEN)

    @property
    def skipped(self) -> list[FileResult]:
        return self.with_status(SKIPPED)

    @property
    def failed(self) -> list[FileResult]:
        return self.with_status(FAILED)

    @property
    def exit_code(self) -> int:
        """0 when no input failed, else ``InputFileError.exit_code`` (2)."""
        return InputFileError.exit_code if self.failed else 0


class BatchObserver(Protocol):
    """Progress reporting of :func:`transcribe_batch` (the CLI draws rich progress bars with it)."""

    def started(self, audio: Path, index: int, total: int) -> ProgressFn | None:
        """File ``index`` (0-based) of ``total`` starts; returns its frame-progress callback."""

    def finished(self, result: FileResult) -> None:
        """A file was written, skipped or failed."""


def one_line(error: BaseException) -> str:
    """The first line of an error's message (gin appends context lines), or its type name."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def process_file(
    engine: FileTranscriber | None,
    item: PlannedFile,
    options: OutputOptions,
    sonifier: Any = None,
    progress: ProgressFn | None = None,
) -> FileResult:
    """Transcribes and writes one planned file, or skips it when all its outputs exist (no overwrite).

    A PolyampError of the file becomes a ``failed`` result; configuration and checkpoint errors, and
    errors writing an output (PolyampErrors that are also OSErrors), raise. ``engine`` may be None
    when no file needs transcribing (see :func:`needs_transcription`): nothing is loaded for a batch
    that is already done.
    """
    started = time.perf_counter()
    if not needs_transcription(item, options):
        return FileResult(item.audio, SKIPPED, kept=item.outputs.requested())
    if engine is None:
        raise ValueError(f"{item.audio} needs transcribing but no engine was given")
    try:
        result = engine(item.audio, progress)
        written, kept = write_outputs(result, item.outputs, item.audio, options, sonifier)
    except (ConfigError, CheckpointError):
        raise
    except PolyampError as error:
        if isinstance(error, OSError):  # an output cannot be written (full disk, read-only folder): stop
            raise
        return FileResult(item.audio, FAILED, error=one_line(error), seconds=time.perf_counter() - started)
    tracks = {label: len(notes) for label, notes in result.tracks().items()}
    return FileResult(item.audio, WRITTEN, written, kept, tracks, seconds=time.perf_counter() - started)


def transcribe_batch(
    engine: FileTranscriber | None,
    planned: Sequence[PlannedFile],
    options: OutputOptions,
    sonifier: Any = None,
    observer: BatchObserver | None = None,
    left_out: Sequence[Path] = (),
) -> BatchReport:
    """Runs :func:`process_file` over ``planned`` (from :func:`plan_batch`) in order; returns the report."""
    results = []
    for index, item in enumerate(planned):
        progress = observer.started(item.audio, index, len(planned)) if observer is not None else None
        result = process_file(engine, item, options, sonifier, progress)
        results.append(result)
        if observer is not None:
            observer.finished(result)
    return BatchReport(results, list(left_out))
