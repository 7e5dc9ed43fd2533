"""Multi-track MIDI: one named track per instrument family.

A multi-instrument transcription is a mapping ``{family index: notes}`` (families index
:data:`~polyamp.notes.families.FAMILY_NAMES`). In the file, family ``f`` is one track named
``FAMILY_NAMES[f]`` (e.g. ``"string"``) playing program ``DEFAULT_PROGRAMS[f]``, not a drum
track; tracks follow the family order and families without notes get no track. A note given to
two families is written to both tracks. Notes keep their times (seconds; only the tick grid of
480 ticks per quarter at ``qpm`` changes) and velocities.

Notes are :class:`~polyamp.decode.onsets_frames.Note` objects (``pitch``, ``start_s``, ``end_s``,
``velocity``); NoteSequence notes (``start_time``/``end_time``) are accepted wherever notes are.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from polyamp.decode.onsets_frames import Note
from polyamp.errors import ConfigError, MidiError, OutputExistsError, PolyampError
from polyamp.notes.families import DEFAULT_PROGRAMS, DRUMS_NAME, FAMILY_NAMES, NUM_FAMILIES, family_of

TICKS_PER_QUARTER = 480
"""Resolution of written files: 1.04 ms per tick at 120 qpm."""

NotesByFamily = dict[int, list[Note]]


def as_note(note: Any) -> Note:
    """A :class:`Note` from a Note, or from a NoteSequence note (``start_time``/``end_time`` in seconds)."""
    if isinstance(note, Note):
        return note
    if hasattr(note, "start_s"):
        return Note(int(note.pitch), float(note.start_s), float(note.end_s), int(note.velocity))
    return Note(int(note.pitch), float(note.start_time), float(note.end_time), int(note.velocity))


def family_key(key: int | str) -> int:
    """Family index of ``key``: an index 0-11 or a family name; ConfigError listing the valid names."""
    if isinstance(key, str):
        name = key.strip().lower()
        if name in FAMILY_NAMES:
            return FAMILY_NAMES.index(name)
    elif not isinstance(key, bool):
        try:
            index = int(key)
        except (TypeError, ValueError):
            index = -1
        if index == key and 0 <= index < NUM_FAMILIES:
            return index
    raise ConfigError(
        f"unknown instrument family {key!r}; use an index 0-{NUM_FAMILIES - 1} or one of: {', '.join(FAMILY_NAMES)}"
    )


def _sequence_notes(sequence: Any) -> list[Any]:
    """The notes of a NoteSequence (anything with ``.notes`` and ``.tempos``) or of a list of notes."""
    if hasattr(sequence, "notes") and hasattr(sequence, "tempos"):
        return list(sequence.notes)
    return list(sequence)


def split_sequence_by_family(sequence: Any, families_per_note: Sequence[Iterable[int]]) -> NotesByFamily:
    """``{family: notes}`` with note ``i`` of ``sequence`` under every family in ``families_per_note[i]``.

    ``sequence`` is a NoteSequence or a list of notes; families are indices 0-11. Families keep
    the notes' order; a note with no family is left out; families without notes are absent.
    """
    notes = _sequence_notes(sequence)
    if len(families_per_note) != len(notes):
        raise ValueError(f"families_per_note has {len(families_per_note)} entries for {len(notes)} notes")
    result: NotesByFamily = {}
    for note, families in zip(notes, families_per_note, strict=True):
        converted = as_note(note)
        for family in families:
            result.setdefault(family_key(family), []).append(converted)
    return dict(sorted(result.items()))


def notes_by_program_family(sequence: Any) -> NotesByFamily:
    """``{family_of(program): notes}`` of a NoteSequence's pitched notes (drum notes are left out).

    This is how a ground-truth sequence (Slakh, NSynth mixes) splits into family references.
    """
    result: NotesByFamily = {}
    for note in _sequence_notes(sequence):
        family = family_of(note.program, note.is_drum)
        if family is not None:
            result.setdefault(family, []).append(as_note(note))
    return dict(sorted(result.items()))


def _normalise(notes_by_family: Mapping[Any, Iterable[Any]]) -> NotesByFamily:
    """``{family index: [Note]}`` in family order, empty families dropped, same-family keys merged."""
    result: NotesByFamily = {}
    for key, notes in notes_by_family.items():
        converted = [as_note(note) for note in notes]
        if converted:
            result.setdefault(family_key(key), []).extend(converted)
    return dict(sorted(result.items()))


def multitrack_note_sequence(notes_by_family: Mapping[Any, Iterable[Any]], qpm: float = 120.0) -> Any:
    """NoteSequence of ``{family: notes}``: each note has ``instrument = family`` and ``program =
    DEFAULT_PROGRAMS[family]`` (so ``family_of(note.program)`` gives the family back); tempo ``qpm``,
    total_time = the last note end (s)."""
    from polyamp.notes.rolls import _music_pb2

    sequence = _music_pb2().NoteSequence()
    sequence.ticks_per_quarter = TICKS_PER_QUARTER
    sequence.tempos.add(time=0.0, qpm=float(qpm))
    total_time = 0.0
    for family, notes in _normalise(notes_by_family).items():
        for note in notes:
            sequence.notes.add(
                pitch=note.pitch,
                velocity=note.velocity,
                start_time=note.start_s,
                end_time=note.end_s,
                instrument=family,
                program=DEFAULT_PROGRAMS[family],
                is_drum=False,
            )
            total_time = max(total_time, note.end_s)
    sequence.total_time = total_time
    return sequence


def _tracks_of(source: Any) -> list[tuple[str, int, bool, list[Note]]]:
    """(name, program, is_drum, notes) per track. A NoteSequence is grouped by ``family_of(program)``;
    its drum notes go to one ``drums`` track (program 0, is_drum)."""
    if hasattr(source, "notes") and hasattr(source, "tempos"):
        grouped = notes_by_program_family(source)
        drums = [as_note(note) for note in source.notes if note.is_drum]
    else:
        if not isinstance(source, Mapping):
            raise TypeError(f"expected a mapping {{family: notes}} or a NoteSequence, got {type(source).__name__}")
        grouped = _normalise(source)
        drums = []
    tracks = [(FAMILY_NAMES[family], DEFAULT_PROGRAMS[family], False, notes) for family, notes in grouped.items()]
    if drums:
        tracks.append((DRUMS_NAME, 0, True, drums))
    return tracks


def _check_note(note: Note, track: str, path: pathlib.Path) -> None:
    """MidiError naming the file and the track when a note cannot be written faithfully."""
    problem = None
    if not 0 <= note.pitch <= 127:
        problem = "its pitch is outside MIDI 0-127"
    elif not 1 <= note.velocity <= 127:
        problem = "its velocity is outside 1-127"
    elif not (note.start_s >= 0 and note.end_s < float("inf")):
        problem = "its times are negative or not finite"
    elif not note.end_s > note.start_s:
        problem = "it does not end after it starts"
    if problem is not None:
        raise MidiError(
            f"cannot write MIDI file {path}: a {track!r} note (pitch {note.pitch}, velocity {note.velocity}, "
            f"{note.start_s}-{note.end_s} s) is invalid because {problem}; fix or drop that note"
        )


def write_multitrack_midi(
    notes_by_family: Mapping[Any, Iterable[Any]] | Any,
    path: str | os.PathLike[str],
    qpm: float = 120.0,
    overwrite: bool = False,
) -> pathlib.Path:
    """Writes one track per family (see the module docstring) to ``path``; returns the path.

    ``notes_by_family`` maps family indices (or names) to notes; a NoteSequence is also accepted
    and split by ``family_of(program)`` (its drum notes go to a ``drums`` drum track). Refuses an
    existing file (OutputExistsError) unless ``overwrite``; checks every note before writing and
    writes atomically, so an error never leaves a partial file. Families with no notes get no
    track; with no notes at all the file holds only the tempo.
    """
    path = pathlib.Path(path)
    if not qpm or qpm <= 0 or qpm != qpm or qpm == float("inf"):
        raise ConfigError(f"qpm must be a positive number of quarter notes per minute, got {qpm}")
    if path.is_dir():
        raise PolyampError(f"cannot write MIDI file {path}: it is a directory")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file already exists: {path} (use --overwrite to replace it)")

    import pretty_midi

    pretty = pretty_midi.PrettyMIDI(resolution=TICKS_PER_QUARTER, initial_tempo=float(qpm))
    for name, program, is_drum, notes in _tracks_of(notes_by_family):
        track = pretty_midi.Instrument(program=program, is_drum=is_drum, name=name)
        for note in sorted(notes, key=lambda item: (item.start_s, item.pitch, item.end_s)):
            _check_note(note, name, path)
            track.notes.append(
                pretty_midi.Note(velocity=note.velocity, pitch=note.pitch, start=note.start_s, end=note.end_s)
            )
        pretty.instruments.append(track)

    from polyamp.fileio import atomic_output

    try:
        with atomic_output(path) as handle:
            pretty.write(handle)
    except OSError as error:
        raise PolyampError(f"cannot write MIDI file {path}: {error.strerror or error}") from error
    return path


def read_multitrack_midi(path: str | os.PathLike[str]) -> NotesByFamily:
    """``{family: notes}`` of a MIDI file, notes sorted by start time then pitch.

    A track's family is its name when that is a family name (as :func:`write_multitrack_midi`
    writes), else ``family_of(program)``; tracks of one family are merged; drum tracks are skipped.
    Raises MidiError naming the file if it is missing, a directory, empty or not valid MIDI.
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

    import io

    import pretty_midi

    try:
        pretty = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as error:  # mido/pretty_midi raise many types on corrupt files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MidiError(f"cannot read MIDI file {path}: not a valid MIDI file ({reason})") from error

    result: NotesByFamily = {}
    for track in pretty.instruments:
        if track.is_drum:
            continue
        name = (track.name or "").strip().lower()
        family = FAMILY_NAMES.index(name) if name in FAMILY_NAMES else family_of(track.program)
        result.setdefault(family, []).extend(
            Note(int(note.pitch), float(note.start), float(note.end), int(note.velocity)) for note in track.notes
        )
    return {
        family: sorted(notes, key=lambda note: (note.start_s, note.pitch, note.end_s))
        for family, notes in sorted(result.items())
    }
