"""Timbre-only transcription: split the notes of any transcriber's MIDI into instrument-family tracks.

``polyamp transcribe --model-type timbre song.wav --notes song-notes.mid`` labels every pitched
note of ``song-notes.mid`` with the Timbre model and writes one MIDI track per family.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from polyamp.constants import SAMPLE_RATE_HZ
from polyamp.errors import MidiError

NOTES_PAST_AUDIO_TOLERANCE_S = 1.0
"""Notes may end this long after the audio (release tails) before the files are called mismatched."""


def notes_for_labelling(notes_path: str | os.PathLike[str], audio_seconds: float) -> tuple[Any, np.ndarray]:
    """(the NoteSequence, rows [N, 3] of its pitched notes: MIDI pitch, start s, end s).

    MidiError naming the file when it holds no pitched notes or its notes run past the audio.
    """
    from polyamp.notes.midi import read_midi

    sequence = read_midi(notes_path)
    pitched = [note for note in sequence.notes if not note.is_drum]
    if not pitched:
        raise MidiError(f"{notes_path} holds no pitched notes to label")
    last_start = max(note.start_time for note in pitched)
    if (
        last_start >= audio_seconds
        or max(note.end_time for note in pitched) > audio_seconds + NOTES_PAST_AUDIO_TOLERANCE_S
    ):
        raise MidiError(
            f"{notes_path} does not match the audio: its notes run to "
            f"{max(note.end_time for note in pitched):.1f} s but the audio lasts {audio_seconds:.1f} s"
        )
    rows = np.asarray(
        [(note.pitch, note.start_time, max(note.end_time, note.start_time)) for note in pitched], np.float32
    )
    return sequence, rows


@dataclasses.dataclass
class LabelledNotes:
    """The notes of a MIDI file with their families: ``notes`` [N] (pitched notes, file order),
    ``family_probs`` float32 [N, 12], ``notes_by_family`` ``{family index: notes}`` (a note may be in
    several families), ``duration_s`` the audio's length in seconds."""

    notes: list[Any]
    family_probs: np.ndarray
    notes_by_family: dict[int, list[Any]]
    duration_s: float


def label_notes_file(
    components: Any,
    audio_path: str | os.PathLike[str],
    notes_path: str | os.PathLike[str],
    families: str | None = None,
) -> LabelledNotes:
    """Labels the pitched notes of ``notes_path`` heard in ``audio_path`` with the Timbre model.

    ``families`` (``"string,brass"``) restricts the families notes may be given.
    """
    from polyamp.audio.decode import load_audio
    from polyamp.decode.multi_instrument import assign_families, parse_families
    from polyamp.decode.onsets_frames import Note
    from polyamp.timbre_evaluation import label_notes

    samples = load_audio(audio_path)
    duration_s = len(samples) / SAMPLE_RATE_HZ
    sequence, rows = notes_for_labelling(notes_path, duration_s)
    probabilities = np.asarray(label_notes(components, samples, rows), np.float32)
    allowed = parse_families(families) if families else None
    decoder = components.decoder
    assignments = assign_families(
        probabilities,
        multiple_instruments_threshold=decoder.multiple_instruments_threshold,
        best_threshold=decoder.best_threshold,
        allowed_families=allowed,
        keep_unassigned=decoder.keep_unassigned,
        min_family_share=decoder.min_family_share,
    )
    notes = [
        Note(int(note.pitch), float(note.start_time), float(note.end_time), int(note.velocity or 80))
        for note in sequence.notes
        if not note.is_drum
    ]
    notes_by_family: dict[int, list[Any]] = {}
    for note, note_families in zip(notes, assignments, strict=True):
        for family in note_families:
            notes_by_family.setdefault(family, []).append(note)
    return LabelledNotes(notes, probabilities, dict(sorted(notes_by_family.items())), duration_s)


def label_midi_notes(
    components: Any,
    audio_path: str | os.PathLike[str],
    notes_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    families: str | None = None,
    qpm: float = 120.0,
    overwrite: bool = False,
) -> dict[int, int]:
    """Labels the notes of ``notes_path`` heard in ``audio_path`` and writes multi-track MIDI.

    ``families`` (``"string,brass"``) restricts the families notes may be given. Returns the
    number of notes written per family index.
    """
    from polyamp.notes.multitrack import write_multitrack_midi

    labelled = label_notes_file(components, audio_path, notes_path, families)
    write_multitrack_midi(labelled.notes_by_family, Path(output_path), qpm=qpm, overwrite=overwrite)
    return {family: len(notes) for family, notes in labelled.notes_by_family.items()}
