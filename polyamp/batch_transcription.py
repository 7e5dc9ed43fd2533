"""Batch transcription: many audio files in, MIDI and optional companion files out, robust to bad files.

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
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from polyamp.constants import FRAMES_PER_SECOND
from polyamp.errors import CheckpointError, ConfigError, InputFileError, OutputExistsError, PolyampError

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``: frames (or steps) of one file done so far."""

WRITTEN, SKIPPED, FAILED = "written", "skipped", "failed"


# ------------------------------------------------------------------------------------------------
# Options and output paths.


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """What to write for each input.

    ``output_dir``: folder of every output (None = beside each input); ``suffix``: added to the
    input's stem; ``qpm``: MIDI tempo (quarter notes per minute); ``note_events``, ``model_outputs``,
    ``plot``, ``sonify``: also write the ``.csv``, ``.npz``, ``.png``, ``.wav``; ``overwrite``: replace
    existing outputs (else keep them and skip inputs that are done).
    """

    output_dir: Path | None = None
    suffix: str = ".polyamp"
    qpm: float = 120.0
    note_events: bool = False
    model_outputs: bool = False
    plot: bool = False
    sonify: bool = False
    overwrite: bool = False


@dataclasses.dataclass(frozen=True)
class OutputPaths:
    """The output files of one input; None = not requested."""

    midi: Path
    note_events: Path | None = None
    model_outputs: Path | None = None
    plot: Path | None = None
    audio: Path | None = None

    def requested(self) -> list[Path]:
        """Every requested output, MIDI first (the order they are written in)."""
        paths = (self.midi, self.note_events, self.model_outputs, self.plot, self.audio)
        return [path for path in paths if path is not None]

    def missing(self) -> list[Path]:
        """The requested outputs that do not exist yet."""
        return [path for path in self.requested() if not path.exists()]


def _output_base(audio_path: Path, output_dir: Path | None, suffix: str) -> tuple[Path, str]:
    folder = Path(output_dir) if output_dir is not None else audio_path.parent
    return folder, f"{audio_path.stem}{suffix}"


def output_paths_for(audio_path: Path, options: OutputOptions) -> OutputPaths:
    """``<folder>/<stem><suffix>.mid`` and the requested ``.csv``/``.npz``/``.png``/``.wav`` beside it."""
    folder, name = _output_base(audio_path, options.output_dir, options.suffix)

    def path(extension: str, wanted: bool = True) -> Path | None:
        return folder / f"{name}{extension}" if wanted else None

    return OutputPaths(
        midi=folder / f"{name}.mid",
        note_events=path(".csv", options.note_events),
        model_outputs=path(".npz", options.model_outputs),
        plot=path(".png", options.plot),
        audio=path(".wav", options.sonify),
    )


@dataclasses.dataclass(frozen=True)
class PlannedFile:
    """One input of a batch and its output files."""

    audio: Path
    outputs: OutputPaths


def plan_batch(inputs: Sequence[Path], options: OutputOptions) -> tuple[list[PlannedFile], list[Path]]:
    """(the files to process with their outputs, the inputs left out as sonifications of other inputs).

    Raises OutputExistsError when two inputs would write the same file (or one input's output is
    another input), before anything is written.
    """
    sonified = {
        output_paths_for(path, dataclasses.replace(options, sonify=True)).audio.resolve(): path for path in inputs
    }
    kept = [path for path in inputs if sonified.get(path.resolve(), path) == path]
    left_out = [path for path in inputs if sonified.get(path.resolve(), path) != path]
    planned = [PlannedFile(path, output_paths_for(path, options)) for path in kept]
    inputs_by_key = {path.resolve(): path for path in kept}
    owners: dict[Path, Path] = {}
    for item in planned:
        for output in item.outputs.requested():
            key = output.resolve()
            if key in inputs_by_key:
                raise OutputExistsError(
                    f"{item.audio} would write {output}, which is an input; use --output-dir or another "
                    "--transcribed-file-suffix"
                )
            if key in owners:
                raise OutputExistsError(
                    f"{owners[key]} and {item.audio} would both write {output}; use --output-dir or another "
                    "--transcribed-file-suffix, or transcribe them in separate runs"
                )
            owners[key] = item.audio
    return planned, left_out


# ------------------------------------------------------------------------------------------------
# Decoding thresholds.


def threshold_overrides(
    onset_threshold: float | None = None,
    frame_threshold: float | None = None,
    offset_threshold: float | None = None,
    minimum_note_length_ms: float | None = None,
) -> dict[str, float]:
    """``{hparam: value}`` of the given decoding options (MelodicHParams names).

    Thresholds are probabilities in [0, 1] (0 disables the onset/offset stage); the minimum note
    length is in milliseconds, >= 0. ConfigError naming the option otherwise.
    """
    overrides: dict[str, float] = {}
    for option, name, value in (
        ("--onset-threshold", "predict_onset_threshold", onset_threshold),
        ("--frame-threshold", "predict_frame_threshold", frame_threshold),
        ("--offset-threshold", "predict_offset_threshold", offset_threshold),
    ):
        if value is None:
            continue
        if not (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
            raise ConfigError(f"{option} must be a probability between 0 and 1, got {value}")
        overrides[name] = float(value)
    if minimum_note_length_ms is not None:
        value = minimum_note_length_ms
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"--minimum-note-length must be a number of milliseconds >= 0, got {value}")
        overrides["min_duration_ms"] = float(value)
    return overrides


def merge_hparams_json(hparams_json: str | None, overrides: dict[str, Any]) -> str | None:
    """``--hparams`` JSON with ``overrides`` on top (they win); None when both are empty."""
    if not overrides:
        return hparams_json
    from polyamp.config import load_hparams_object

    merged = load_hparams_object(hparams_json) if hparams_json else {}
    merged.update(overrides)
    return json.dumps(merged)


# ------------------------------------------------------------------------------------------------
# Transcription engines: one audio file -> Transcribed.


@dataclasses.dataclass
class Transcribed:
    """What the writers need from one transcription.

    ``notes``: single-track notes, or the notes the families were given to (objects with ``pitch``,
    ``start_s``, ``end_s`` in seconds, ``velocity``); ``notes_by_family``: ``{family index: notes}``,
    None for single-track output; ``duration_s``: the audio's length (s); ``rolls``: the model's
    float [frames, 88] rolls (None without); ``family_probs``: float32 [len(notes), 12] (None without).
    """

    notes: list[Any]
    notes_by_family: dict[int, list[Any]] | None
    duration_s: float
    rolls: Any = None
    family_probs: np.ndarray | None = None

    def tracks(self) -> dict[str, list[Any]]:
        """``{track label: notes}`` as in the MIDI file: ``{"notes": ...}`` or family names."""
        from polyamp.notes.families import FAMILY_NAMES

        if self.notes_by_family is None:
            return {"notes": list(self.notes)}
        return {FAMILY_NAMES[family]: list(notes) for family, notes in self.notes_by_family.items()}

    @property
    def num_notes(self) -> int:
        """Notes in the MIDI file (a note in two families counts twice)."""
        return sum(len(notes) for notes in self.tracks().values())


FileTranscriber = Callable[[Path, "ProgressFn | None"], Transcribed]
"""``engine(audio_path, progress) -> Transcribed``; raises PolyampError for an unusable file."""


def _duration_of(rolls: Any) -> float:
    return max(rolls.num_frames - 1, 0) / FRAMES_PER_SECOND


def melodic_engine(model: Any) -> FileTranscriber:
    """Single-track transcription with a :class:`~polyamp.transcription.TranscriptionModel`."""

    def transcribe(audio_path: Path, progress: ProgressFn | None = None) -> Transcribed:
        result = model.transcribe_file(audio_path, progress=progress)
        return Transcribed(result.notes, None, _duration_of(result.rolls), result.rolls)

    return transcribe


def full_engine(transcriber: Any, families: str | None = None) -> FileTranscriber:
    """One track per family with a :class:`~polyamp.full_transcription.FullTranscriber`; ``families``
    (``"string,brass"``) is checked now (ConfigError)."""
    from polyamp.full_transcription import allowed_families

    allowed = allowed_families(transcriber.components, families)

    def transcribe(audio_path: Path, progress: ProgressFn | None = None) -> Transcribed:
        result = transcriber.transcribe_file(audio_path, allowed, progress=progress)
        return Transcribed(
            result.notes, result.notes_by_family, _duration_of(result.rolls), result.rolls, result.family_probs
        )

    return transcribe


def timbre_engine(components: Any, notes_path: Path, families: str | None = None) -> FileTranscriber:
    """Family labels for the notes of the MIDI file ``notes_path`` (Timbre Components); ``families``
    is checked now (ConfigError)."""
    from polyamp.decode.multi_instrument import parse_families
    from polyamp.timbre_labelling import label_notes_file

    if families:
        parse_families(families)

    def transcribe(audio_path: Path, progress: ProgressFn | None = None) -> Transcribed:
        labelled = label_notes_file(components, audio_path, notes_path, families)
        if progress is not None:
            progress(1, 1)
        return Transcribed(labelled.notes, labelled.notes_by_family, labelled.duration_s, None, labelled.family_probs)

    return transcribe


def open_sonifier(
    options: OutputOptions, soundfont: str | os.PathLike[str] | None = None, sample_rate_hz: int | None = None
) -> Any:
    """A :class:`~polyamp.synth.sonify.Sonifier` when ``options.sonify`` (else None), so that a missing
    FluidSynth or SoundFont, or a bad rate, fails before any file; ``soundfont`` None = search the
    usual places; ``sample_rate_hz`` None = 44.1 kHz (8-96 kHz)."""
    from polyamp.synth.sonify import DEFAULT_SONIFY_RATE_HZ, Sonifier, find_soundfont

    if not options.sonify:
        if soundfont is not None or sample_rate_hz is not None:
            raise ConfigError("--sonify-soundfont and --sonify-sample-rate go with --sonify")
        return None
    rate = DEFAULT_SONIFY_RATE_HZ if sample_rate_hz is None else sample_rate_hz
    if not 8000 <= rate <= 96000:
        raise ConfigError(f"--sonify-sample-rate must be within 8000-96000 Hz, got {rate}")
    return Sonifier(find_soundfont(soundfont), rate)


def check_output_options(options: OutputOptions) -> None:
    """ConfigError (or MissingDependencyError) now for options that would fail at the first file."""
    if not options.qpm or not 0 < options.qpm < float("inf"):
        raise ConfigError(f"qpm must be a positive number of quarter notes per minute, got {options.qpm}")
    if options.plot:
        from polyamp.plots import require_matplotlib

        require_matplotlib()


def load_engine(
    model_type: str,
    model_dir: str | os.PathLike[str],
    load_id: str = "*",
    hparams_json: str | None = None,
    gin_files: Sequence[str] = (),
    gin_params: Sequence[str] = (),
    load_full: bool | None = None,
    families: str | None = None,
    notes_path: Path | None = None,
) -> FileTranscriber:
    """Restores the model of ``model_type`` (melodic, full, or timbre with ``notes_path``) as an engine.

    Every configuration error (unknown hparam, bad gin, missing checkpoint, bad family) raises here.
    """
    from polyamp.decode.multi_instrument import parse_families

    if families:
        parse_families(families)  # a misspelt family fails before the model loads
    if model_type == "timbre":
        from polyamp.loading import load_components

        if notes_path is None:
            raise ConfigError("--model-type timbre labels given notes: pass --notes NOTES.mid")
        components, _ = load_components(
            model_dir, "timbre", load_id, hparams_json, tuple(gin_files), tuple(gin_params), load_full
        )
        return timbre_engine(components, notes_path, families)
    if model_type == "full":
        from polyamp.full_transcription import load_full_transcriber

        transcriber = load_full_transcriber(model_dir, load_id, hparams_json, gin_files, gin_params, load_full)
        return full_engine(transcriber, families)
    from polyamp.transcription import load_model

    return melodic_engine(load_model(model_dir, model_type, load_id, hparams_json, gin_files, gin_params, load_full))


# ------------------------------------------------------------------------------------------------
# Writers.


def model_output_arrays(result: Transcribed) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` (see :mod:`polyamp.model_outputs`)."""
    from polyamp.model_outputs import note_family_arrays, roll_arrays, soft_family_rolls

    arrays: dict[str, np.ndarray] = {}
    if result.rolls is not None:
        arrays.update(roll_arrays(result.rolls))
    if result.family_probs is not None:
        arrays.update(note_family_arrays(result.notes, result.family_probs))
        if result.rolls is not None:
            arrays["family_rolls"] = soft_family_rolls(result.notes, result.family_probs, result.rolls.num_frames)
    return arrays


def write_midi_output(result: Transcribed, path: Path, qpm: float) -> Path:
    """One piano track (single-track result) or one named track per family, replacing ``path``."""
    if result.notes_by_family is None:
        from polyamp.notes.midi import write_midi

        return write_midi(result.notes, path, qpm=qpm, overwrite=True)
    from polyamp.notes.multitrack import write_multitrack_midi

    return write_multitrack_midi(result.notes_by_family, path, qpm=qpm, overwrite=True)


def write_note_events_output(result: Transcribed, path: Path) -> Path:
    """The note-event CSV of the MIDI file's notes, replacing ``path``."""
    from polyamp.notes.note_events import family_events, single_track_events, write_note_events

    if result.notes_by_family is None:
        events = single_track_events(result.notes)
    else:
        events = family_events(result.notes_by_family)
    return write_note_events(events, path, overwrite=True)


def write_plot_output(result: Transcribed, path: Path, audio_path: Path) -> Path:
    """The piano-roll PNG (notes coloured by family), replacing ``path``."""
    from polyamp.plots import plot_piano_roll

    title = f"{audio_path.name}: {result.num_notes} notes, {result.duration_s:.1f} s"
    return plot_piano_roll(result.tracks(), path, duration_s=result.duration_s, title=title, overwrite=True)


def write_outputs(
    result: Transcribed,
    outputs: OutputPaths,
    audio_path: Path,
    options: OutputOptions,
    sonifier: Any = None,
) -> tuple[list[Path], list[Path]]:
    """Writes the requested outputs of one transcription, MIDI first; returns (written, kept).

    Without ``options.overwrite`` an existing output is kept as it is; the WAV is rendered from the
    MIDI file on disk (``sonifier``: a :class:`~polyamp.synth.sonify.Sonifier`, needed with ``audio``).
    """
    from polyamp.model_outputs import write_model_outputs

    writers: list[tuple[Path | None, Callable[[Path], Path]]] = [
        (outputs.midi, lambda path: write_midi_output(result, path, options.qpm)),
        (outputs.note_events, lambda path: write_note_events_output(result, path)),
        (outputs.model_outputs, lambda path: write_model_outputs(model_output_arrays(result), path, overwrite=True)),
        (outputs.plot, lambda path: write_plot_output(result, path, audio_path)),
        (outputs.audio, lambda path: sonifier.write(outputs.midi, path, result.duration_s, overwrite=True)),
    ]
    written: list[Path] = []
    kept: list[Path] = []
    for path, write in writers:
        if path is None:
            continue
        if path.exists() and not options.overwrite:
            kept.append(path)
            continue
        written.append(write(path))
    return written, kept


# ------------------------------------------------------------------------------------------------
# The batch.


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
    engine: FileTranscriber,
    item: PlannedFile,
    options: OutputOptions,
    sonifier: Any = None,
    progress: ProgressFn | None = None,
) -> FileResult:
    """Transcribes and writes one planned file, or skips it when all its outputs exist (no overwrite).

    A PolyampError of the file becomes a ``failed`` result; configuration and checkpoint errors, and
    errors writing an output (PolyampErrors that are also OSErrors), raise.
    """
    started = time.perf_counter()
    if not options.overwrite and not item.outputs.missing():
        return FileResult(item.audio, SKIPPED, kept=item.outputs.requested())
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
    engine: FileTranscriber,
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
