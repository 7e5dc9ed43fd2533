"""The writers of one transcription's outputs: MIDI, note-event CSV, model-output NPZ, piano-roll PNG
and sonified WAV, each written atomically; existing outputs are kept unless asked to overwrite."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from polyamp.batch.engines import Transcribed
from polyamp.batch.outputs import OutputOptions, OutputPaths
from polyamp.errors import ConfigError


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
