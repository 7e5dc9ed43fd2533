"""Reading and writing Standard MIDI Files as NoteSequences (times in seconds).

``read_midi`` and ``write_midi`` wrap ``note_seq`` so that every failure a user can
cause (a missing, unreadable or corrupt file; an existing output) raises a
:class:`~polyamp.errors.PolyampError` naming the file.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polyamp.errors import ConfigError, MidiError, OutputError, OutputExistsError

if TYPE_CHECKING:
    from note_seq.protobuf.music_pb2 import NoteSequence

DEFAULT_TICKS_PER_QUARTER = 480
"""Resolution used when a sequence does not set one: 1.04 ms per tick at 120 qpm."""


def read_midi(path: str | os.PathLike[str]) -> NoteSequence:
    """Reads a MIDI file into a NoteSequence (note times in seconds, pitches as MIDI numbers).

    Raises MidiError naming the file if it is missing, a directory, unreadable or not valid MIDI.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise MidiError(f"MIDI file not found: {path}")
    if path.is_dir():
        raise MidiError(f"expected a MIDI file but got a directory: {path}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise MidiError(f"cannot read MIDI file {path}: {error.strerror or error}") from error
    if not data:
        raise MidiError(f"MIDI file is empty: {path}")

    from note_seq import midi_io

    try:
        return midi_io.midi_to_note_sequence(data)
    except Exception as error:  # note_seq wraps pretty_midi/mido failures; be safe about the rest
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MidiError(f"cannot read MIDI file {path}: not a valid MIDI file ({reason})") from error


def write_midi(
    sequence: NoteSequence | Sequence[Any],
    path: str | os.PathLike[str],
    qpm: float = 120.0,
    overwrite: bool = False,
) -> pathlib.Path:
    """Writes ``sequence`` to a MIDI file at ``path`` and returns the path.

    The file's tempo is ``qpm`` quarter notes per minute; notes keep their times in seconds
    (only the tick grid changes), their velocity, ``program`` and ``is_drum``. Notes are
    grouped into tracks by ``(instrument, program, is_drum)``. Refuses an existing file
    (OutputExistsError) unless ``overwrite``; creates parent directories; writes atomically
    (a temporary file in the same directory, then ``os.replace``).

    ``sequence`` may also be a list of decoded notes (objects with ``pitch``, ``start_s``,
    ``end_s``, ``velocity``): they go on one piano track without importing note_seq, which keeps
    ``polyamp transcribe`` fast.
    """
    path = pathlib.Path(path)
    if not qpm or qpm <= 0 or qpm != qpm:
        raise ConfigError(f"qpm must be a positive number of quarter notes per minute, got {qpm}")
    if path.is_dir():
        raise OutputError(f"cannot write MIDI file {path}: it is a directory")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file already exists: {path} (use --overwrite to replace it)")

    try:
        pretty = _to_pretty_midi(sequence, qpm)
    except Exception as error:
        raise MidiError(f"cannot convert the notes to MIDI for {path}: {error}") from error

    from polyamp.fileio import atomic_output, output_error

    try:
        with atomic_output(path) as handle:
            pretty.write(handle)
    except OSError as error:
        raise output_error(path, error, "MIDI file") from error
    return path


def _to_pretty_midi(sequence: Any, qpm: float) -> Any:
    """A PrettyMIDI object of a NoteSequence, or of a list of decoded notes (one piano track)."""
    if hasattr(sequence, "notes") and hasattr(sequence, "tempos"):
        from note_seq import midi_io

        return midi_io.note_sequence_to_pretty_midi(_prepare_for_writing(sequence, qpm))
    import pretty_midi

    pretty = pretty_midi.PrettyMIDI(resolution=DEFAULT_TICKS_PER_QUARTER, initial_tempo=float(qpm))
    track = pretty_midi.Instrument(program=0)
    track.notes = [
        pretty_midi.Note(
            velocity=int(note.velocity), pitch=int(note.pitch), start=float(note.start_s), end=float(note.end_s)
        )
        for note in sequence
    ]
    pretty.instruments.append(track)
    return pretty


def _prepare_for_writing(sequence: NoteSequence, qpm: float) -> NoteSequence:
    """Copy of ``sequence`` with a single tempo ``qpm`` at 0 s and one instrument id per track.

    note_seq's writer merges every ``(instrument=0, program, is_drum)`` group into one
    track (and loses notes when there are several), so clashing groups get fresh ids.
    """
    from note_seq.protobuf import music_pb2

    copy = music_pb2.NoteSequence()
    copy.CopyFrom(sequence)
    del copy.tempos[:]
    copy.tempos.add(time=0.0, qpm=float(qpm))
    if not copy.ticks_per_quarter:
        copy.ticks_per_quarter = DEFAULT_TICKS_PER_QUARTER

    groups: dict[tuple[int, int, bool], int] = {}
    used_ids: set[int] = set()
    events = list(copy.notes) + list(copy.pitch_bends) + list(copy.control_changes)
    for event in events:
        key = (event.instrument, event.program, event.is_drum)
        if key not in groups and event.instrument not in used_ids:
            groups[key] = event.instrument
            used_ids.add(event.instrument)
    next_id = max(used_ids, default=0) + 1
    for event in events:
        key = (event.instrument, event.program, event.is_drum)
        if key not in groups:
            groups[key] = next_id
            used_ids.add(next_id)
            next_id += 1
        event.instrument = groups[key]
    return copy
