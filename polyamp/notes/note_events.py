"""Note-event CSV files: one row per note of a written MIDI file, for spreadsheets and scripts.

Columns (header line first, comma-separated, ``\\n`` line ends)::

    start_s,end_s,pitch,velocity,family,program

``start_s``/``end_s`` are seconds from the start of the audio (6 decimals), ``pitch`` the MIDI
pitch (21-108 from the models), ``velocity`` 1-127. ``family`` is the instrument family name
(:data:`~polyamp.notes.families.FAMILY_NAMES`) and ``program`` the 0-based General MIDI program of
its track (:data:`~polyamp.notes.families.DEFAULT_PROGRAMS`). Single-track (Melodic) output has no
family: ``family`` is empty and ``program`` is 0, the piano track the MIDI file holds. A note given
to two families is two rows, as it is on two tracks of the MIDI file. Rows are sorted by start,
pitch, then family order.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from polyamp.errors import MidiError, OutputExistsError
from polyamp.fileio import atomic_write_text
from polyamp.notes.families import DEFAULT_PROGRAMS, FAMILY_NAMES

COLUMNS = ("start_s", "end_s", "pitch", "velocity", "family", "program")
"""The CSV header."""

SINGLE_TRACK_PROGRAM = 0
"""Program of single-track (Melodic) rows: the piano track :func:`~polyamp.notes.midi.write_midi` writes."""


@dataclasses.dataclass(frozen=True)
class NoteEventRow:
    """One CSV row: times in seconds, MIDI ``pitch`` and ``velocity``, ``family`` name ('' = none),
    General MIDI ``program`` (0-based)."""

    start_s: float
    end_s: float
    pitch: int
    velocity: int
    family: str = ""
    program: int = SINGLE_TRACK_PROGRAM


def _times(note: Any) -> tuple[float, float]:
    if hasattr(note, "start_s"):
        return float(note.start_s), float(note.end_s)
    return float(note.start_time), float(note.end_time)


def _event(note: Any, family: str, program: int) -> NoteEventRow:
    start_s, end_s = _times(note)
    return NoteEventRow(start_s, end_s, int(note.pitch), int(note.velocity), family, program)


def _sorted(events: Iterable[NoteEventRow]) -> list[NoteEventRow]:
    order = {name: index for index, name in enumerate(FAMILY_NAMES)}
    return sorted(events, key=lambda event: (event.start_s, event.pitch, order.get(event.family, -1), event.end_s))


def single_track_events(notes: Iterable[Any]) -> list[NoteEventRow]:
    """Rows of single-track notes (``pitch``, ``start_s``/``end_s`` or ``start_time``/``end_time`` in s,
    ``velocity``): no family, program 0."""
    return _sorted(_event(note, "", SINGLE_TRACK_PROGRAM) for note in notes)


def family_events(notes_by_family: Mapping[int, Iterable[Any]]) -> list[NoteEventRow]:
    """Rows of ``{family index: notes}``: each note under its family's name and default program."""
    return _sorted(
        _event(note, FAMILY_NAMES[family], DEFAULT_PROGRAMS[family])
        for family, notes in notes_by_family.items()
        for note in notes
    )


def note_events_csv(events: Iterable[NoteEventRow]) -> str:
    """The CSV text of ``events`` (header included; see the module docstring)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for event in events:
        writer.writerow(
            (f"{event.start_s:.6f}", f"{event.end_s:.6f}", event.pitch, event.velocity, event.family, event.program)
        )
    return buffer.getvalue()


def write_note_events(events: Iterable[NoteEventRow], path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Writes ``events`` as CSV to ``path`` atomically; OutputExistsError for an existing file unless
    ``overwrite``. Returns the path."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file already exists: {path} (use --overwrite to replace it)")
    return atomic_write_text(path, note_events_csv(events))


def read_note_events(path: str | os.PathLike[str]) -> list[NoteEventRow]:
    """The rows of a note-event CSV written by :func:`write_note_events` (MidiError if malformed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise MidiError(f"cannot read note events {path}: {error.strerror or error}") from error
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise MidiError(f"{path} is not a note-event CSV: its header must be {','.join(COLUMNS)}")
    events = []
    for line, row in enumerate(reader, start=2):
        try:
            start_s, end_s, pitch, velocity, family, program = row
            events.append(NoteEventRow(float(start_s), float(end_s), int(pitch), int(velocity), family, int(program)))
        except ValueError as error:
            raise MidiError(f"{path} line {line} is not a note event ({error})") from error
    return events
