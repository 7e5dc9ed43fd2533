"""Model outputs of one transcription as an ``.npz`` file (``numpy.load`` reads it, no pickle needed).

Arrays, all present for Melodic and Full transcriptions:

* ``frames``, ``onsets``, ``offsets``, ``velocities``: float32 [frames, 88], values in [0, 1]
  (velocities are MIDI velocity / 127); column ``p`` is MIDI pitch ``min_midi_pitch + p``;
* ``frames_per_second``: float64 scalar, 31.25 (frame ``t`` starts at ``t / frames_per_second`` s);
* ``min_midi_pitch``: int64 scalar, 21.

With instrument families (Full, and Timbre ``--notes`` labelling), for the N labelled notes:

* ``note_pitch`` int16 [N], ``note_start_s`` / ``note_end_s`` float32 [N] (seconds);
* ``note_family_probs``: float32 [N, 12], the Timbre part's family probabilities of each note;
* ``family_names``: str [12], the column order of the families;
* ``family_rolls``: float16 [frames, 88, 12] (only with frame rolls): on the cells of each note
  (frames ``floor(start * fps)`` to ``ceil(end * fps)``, row pitch - 21) that note's family
  probabilities, the maximum where notes overlap, 0 elsewhere (2.1 kB per frame, about 240 MB per
  hour before compression).

The file is written compressed and atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyamp.constants import FRAMES_PER_SECOND, MIN_MIDI_PITCH, NUM_PITCHES
from polyamp.errors import OutputExistsError
from polyamp.fileio import atomic_output
from polyamp.notes.families import FAMILY_NAMES, NUM_FAMILIES

ROLL_NAMES = ("frames", "onsets", "offsets", "velocities")


def roll_arrays(rolls: Any) -> dict[str, np.ndarray]:
    """float32 [frames, 88] arrays of predicted rolls (clipped to [0, 1]) plus the grid scalars."""
    arrays = {name: np.clip(np.asarray(getattr(rolls, name), np.float32), 0.0, 1.0) for name in ROLL_NAMES}
    arrays["frames_per_second"] = np.float64(FRAMES_PER_SECOND)
    arrays["min_midi_pitch"] = np.int64(MIN_MIDI_PITCH)
    return arrays


def note_family_arrays(notes: Sequence[Any], family_probs: Any) -> dict[str, np.ndarray]:
    """Per-note arrays: pitch [N], start/end seconds [N], family probabilities [N, 12], family names [12]."""
    probs = np.asarray(family_probs, np.float32).reshape(-1, NUM_FAMILIES)
    if probs.shape[0] != len(notes):
        raise ValueError(f"{probs.shape[0]} rows of family probabilities for {len(notes)} notes")
    return {
        "note_pitch": np.asarray([note.pitch for note in notes], np.int16),
        "note_start_s": np.asarray([note.start_s for note in notes], np.float32),
        "note_end_s": np.asarray([note.end_s for note in notes], np.float32),
        "note_family_probs": probs,
        "family_names": np.asarray(FAMILY_NAMES),
    }


def soft_family_rolls(
    notes: Sequence[Any], family_probs: Any, num_frames: int, frames_per_second: float = FRAMES_PER_SECOND
) -> np.ndarray:
    """float16 [num_frames, 88, 12]: each note's family probabilities on its cells (max where notes overlap).

    Note cells follow the label rolls: frames [floor(start * fps), ceil(end * fps)), at least one,
    clipped to the roll; notes outside MIDI 21-108 are skipped.
    """
    from polyamp.notes.rolls import frame_spans

    rolls = np.zeros((int(num_frames), NUM_PITCHES, NUM_FAMILIES), np.float16)
    if not len(notes):
        return rolls
    probs = np.asarray(family_probs, np.float16).reshape(-1, NUM_FAMILIES)
    starts = np.asarray([note.start_s for note in notes], np.float64)
    ends = np.asarray([note.end_s for note in notes], np.float64)
    first, stop = frame_spans(starts, ends, frames_per_second)
    first, stop = np.clip(first, 0, num_frames), np.clip(stop, 0, num_frames)
    for index, note in enumerate(notes):
        row = int(note.pitch) - MIN_MIDI_PITCH
        if 0 <= row < NUM_PITCHES and stop[index] > first[index]:
            cells = rolls[first[index] : stop[index], row]
            np.maximum(cells, probs[index], out=cells)
    return rolls


def write_model_outputs(arrays: dict[str, np.ndarray], path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Writes ``arrays`` to ``path`` as a compressed ``.npz``, atomically; OutputExistsError for an
    existing file unless ``overwrite``. Returns the path."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file already exists: {path} (use --overwrite to replace it)")
    with atomic_output(path) as stream:
        np.savez_compressed(stream, **arrays)
    return path
