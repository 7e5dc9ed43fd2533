"""Transcription engines: one audio file -> :class:`Transcribed` (single-track, one track per family, or
given notes labelled by family), their loading from checkpoints, and the decoding-threshold options."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyamp.constants import FRAMES_PER_SECOND
from polyamp.errors import ConfigError

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``: frames (or steps) of one file done so far."""


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
