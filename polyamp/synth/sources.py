"""Where ``polyamp synth`` gets its pieces: the music21 core corpus or a folder of MIDI files.

Both end as a :class:`~polyamp.synth.piece.Piece` (times in seconds, one part per MIDI
instrument track). Corpus scores go through music21's own MIDI translation (ties, tempo marks,
repeats and dynamics handled by music21), then through pretty_midi like any MIDI file, so both
sources share one reading path. Works listed in ``reserved_works.txt`` are never returned or
parsed (:mod:`polyamp.synth.reserved`). music21 is optional (``pip install 'polyamp[synth]'``).
"""

from __future__ import annotations

import collections
import io
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyamp.errors import ConfigError, DatasetError, MidiError, MissingDependencyError
from polyamp.synth.piece import NoteEvent, Part, Piece
from polyamp.synth.reserved import RESERVED_LIST_NAME, is_reserved, normalize_corpus_path, strip_score_extension

if TYPE_CHECKING:
    import pretty_midi

DEFAULT_CORPUS_EXTENSIONS: tuple[str, ...] = (".mxl", ".xml", ".musicxml", ".krn", ".mid")
"""Corpus file types listed by default, in order of preference when a work exists in several."""

DEFAULT_CORPUS_EXCLUDE: tuple[str, ...] = ("demos", "theoryExercises")
"""Corpus folders of test fragments and exercises rather than music; skipped unless included."""

MIDI_SUFFIXES: tuple[str, ...] = (".mid", ".midi")

_CORPUS_TICKS_PER_QUARTER = 480
"""music21 writes 10080 ticks per quarter; long movements then exceed pretty_midi's 1e7-tick limit
(and its tick table would take ~100 MB), so ticks are rescaled to 480 per quarter before reading
(0.5 ms per tick at 120 qpm)."""

_RESOLVE_EXTENSIONS: tuple[str, ...] = (".mxl", ".musicxml", ".xml", ".krn", ".mid", ".midi", ".abc")

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MUSIC21_MISSING = "music21 is not installed: pip install 'polyamp[synth]'"


def _require_music21() -> Any:
    try:
        import music21
    except ImportError as error:
        raise MissingDependencyError(_MUSIC21_MISSING) from error
    return music21


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def safe_piece_id(text: str) -> str:
    """``text`` made filesystem-safe: ``/`` and anything outside ``[A-Za-z0-9._-]`` become ``_``."""
    cleaned = _UNSAFE_ID_CHARS.sub("_", text.replace("\\", "/").replace("/", "_")).strip("._")
    return cleaned or "piece"


def corpus_piece_id(corpus_path: str) -> str:
    """Stable id of a corpus work: ``bach/bwv1.6.mxl`` -> ``bach_bwv1.6``."""
    return safe_piece_id(normalize_corpus_path(corpus_path))


def _music21_corpus_root() -> Path:
    music21 = _require_music21()
    return Path(music21.common.getCorpusFilePath())


def _is_under(relative: str, prefix: str) -> bool:
    prefix = prefix.replace("\\", "/").strip("/")
    return relative == prefix or relative.startswith(prefix + "/") or strip_score_extension(relative) == prefix


def list_corpus_works(
    seed: int,
    extensions: Sequence[str] = DEFAULT_CORPUS_EXTENSIONS,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = DEFAULT_CORPUS_EXCLUDE,
) -> list[str]:
    """music21 core corpus files to render: corpus-relative paths (``bach/bwv1.6.mxl``), in a
    seeded shuffled order (sorted, then ``random.Random(seed).shuffle``).

    Reserved works are never listed. A work present in several of ``extensions`` (e.g. a
    Beethoven movement as ``.krn`` and ``.mxl``) is listed once, in the earliest extension.
    ``include``: path prefixes to keep (``"bach"``, ``"beethoven/opus18no3"``), matched at folder
    boundaries; ``exclude``: prefixes to drop when ``include`` is not given (default: the demo
    and exercise folders).
    Raises MissingDependencyError without music21, DatasetError if nothing is left.
    """
    _require_music21()
    from music21 import corpus

    extensions, include, exclude = (
        (value,) if isinstance(value, str) else value for value in (extensions, include, exclude)
    )
    root = _music21_corpus_root()
    wanted = tuple(ext.lower() if ext.startswith(".") else "." + ext.lower() for ext in extensions)
    if not wanted:
        raise ConfigError("no corpus file extensions given; pass e.g. .mxl .krn")
    chosen: dict[str, tuple[int, str]] = {}
    for path in corpus.getCorePaths():
        relative = Path(path).relative_to(root).as_posix()
        suffix = Path(relative).suffix.lower()
        if suffix not in wanted:
            continue
        if include:
            if not any(_is_under(relative, prefix) for prefix in include):
                continue
        elif exclude and any(_is_under(relative, prefix) for prefix in exclude):
            continue
        if is_reserved(relative):
            continue
        work = relative[: -len(suffix)]
        rank = wanted.index(suffix)
        if work not in chosen or rank < chosen[work][0]:
            chosen[work] = (rank, relative)
    works = sorted(relative for _, relative in chosen.values())
    if not works:
        where = f" under {', '.join(include)}" if include else ""
        raise DatasetError(
            f"no music21 corpus works{where} with extensions {', '.join(wanted)} "
            f"(reserved works are never listed); check --include"
        )
    random.Random(seed).shuffle(works)
    return works


def resolve_corpus_path(corpus_path: str) -> Path:
    """The corpus file of a corpus-relative path, with or without its extension
    (``bach/bwv1.6`` -> ``.../corpus/bach/bwv1.6.mxl``; without extension the first of
    .mxl .musicxml .xml .krn .mid .midi .abc that exists). Raises DatasetError if none exists."""
    root = _music21_corpus_root()
    relative = corpus_path.replace("\\", "/").strip("/")
    if relative and ".." not in relative.split("/"):
        for candidate in (root / relative, *(root / (relative + ext) for ext in _RESOLVE_EXTENSIONS)):
            if candidate.is_file():
                return candidate
    raise DatasetError(
        f"{corpus_path} is not a music21 corpus work; give a path relative to the corpus root such as bach/bwv1.6"
    )


def _first_score(parsed: Any, corpus_path: str) -> Any:
    """The score itself, or the first score of an Opus (an .abc book holds many tunes)."""
    from music21 import stream

    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise DatasetError(f"music21 corpus work {corpus_path} holds no score; choose another work")
        return scores[0]
    return parsed


def _rescaled_midi(data: bytes, ticks_per_quarter: int) -> Any:
    """mido MidiFile of ``data`` with its tick grid rescaled to ``ticks_per_quarter``."""
    import mido

    midi_file = mido.MidiFile(file=io.BytesIO(data))
    source_ticks = midi_file.ticks_per_beat
    if source_ticks <= ticks_per_quarter:
        return midi_file
    for track in midi_file.tracks:
        absolute = 0
        previous = 0
        for message in track:
            absolute += message.time
            rescaled = round(absolute * ticks_per_quarter / source_ticks)
            message.time = rescaled - previous
            previous = rescaled
    midi_file.ticks_per_beat = ticks_per_quarter
    return midi_file


def piece_from_corpus(corpus_path: str) -> Piece:
    """A music21 corpus work as a Piece (one part per MIDI instrument track with notes).

    ``corpus_path`` is corpus-relative (``bach/bwv1.6`` or ``bach/bwv1.6.mxl``). The score goes
    through ``music21.midi.translate.streamToMidiFile`` (music21 expands repeats, strips ties,
    applies tempo marks and dynamics) and the MIDI bytes are read with pretty_midi; part names
    are music21's track names, programs those music21 wrote (0 if none). For an Opus (an .abc
    book) the first score is used. Reserved works raise ConfigError; a missing or unparsable
    work raises DatasetError; MissingDependencyError without music21.
    """
    _require_music21()
    reserved_message = (
        f"{corpus_path} is reserved for independent evaluation (polyamp/synth/{RESERVED_LIST_NAME}); "
        "choose another corpus work"
    )
    if is_reserved(corpus_path):
        raise ConfigError(reserved_message)
    resolved = resolve_corpus_path(corpus_path)
    root = _music21_corpus_root()
    relative = resolved.relative_to(root).as_posix()
    if is_reserved(relative):
        raise ConfigError(reserved_message)

    from music21 import converter

    try:
        score = _first_score(converter.parse(str(resolved)), corpus_path)
    except DatasetError:
        raise
    except Exception as error:  # music21 raises many exception types on malformed scores
        raise DatasetError(
            f"music21 cannot parse corpus work {corpus_path}: {_one_line(error)}; skip this work"
        ) from error
    score = excerpt_score(score, MAX_CORPUS_QUARTERS)
    return piece_from_music21(score, piece_id=corpus_piece_id(relative), source=relative)


MAX_CORPUS_QUARTERS = 320.0
"""Corpus works longer than this many quarter notes are cut to their opening measures before
MIDI translation (160 s at 120 qpm; arrangement keeps at most ``max_piece_s`` anyway). music21's
translation costs about 3 ms per note, so a 9,000-note quartet movement took 78 s whole and
takes 11 s as an excerpt."""


def excerpt_score(score: Any, max_quarters: float) -> Any:
    """The measures of ``score`` that start before ``max_quarters``, played as written (no repeats).

    Repeat barlines and repeat expressions are removed from the excerpt, since a cut can fall
    inside a repeated section. Scores that are short enough, or have no measures, are returned
    unchanged; if music21 cannot cut the score, the whole score is used.
    """
    if float(score.highestTime) <= max_quarters or not getattr(score, "parts", None):
        return score
    try:
        from music21 import bar, repeat

        last = None
        for measure in score.parts[0].getElementsByClass("Measure"):
            if measure.offset >= max_quarters:
                break
            last = measure.number
        if last is None:
            return score
        excerpt = score.measures(0, last)
        for mark in list(excerpt.recurse().getElementsByClass(bar.Repeat)):
            mark.activeSite.remove(mark)
        for mark in list(excerpt.recurse().getElementsByClass(repeat.RepeatExpression)):
            mark.activeSite.remove(mark)
        return excerpt
    except Exception:  # music21's cutting is best effort; the whole score still translates
        return score


def piece_from_music21(score: Any, piece_id: str, source: str) -> Piece:
    """A music21 stream (Score, Part...) as a Piece, through music21's MIDI translation.

    ``music21.midi.translate.streamToMidiFile`` expands repeats, strips ties and applies tempo
    marks and dynamics; its MIDI (10080 ticks per quarter, rescaled to 480) is read with
    pretty_midi. One Part per instrument track with notes: name = music21's track name,
    program = the program music21 wrote (0 if none), ``is_drum`` for channel 10. Raises
    DatasetError naming ``source`` if the translation fails or yields no notes, ConfigError if
    ``source`` names a reserved corpus work.
    """
    _require_music21()
    if is_reserved(source):
        raise ConfigError(
            f"{source} is reserved for independent evaluation (polyamp/synth/{RESERVED_LIST_NAME}); choose another work"
        )
    from music21.midi import translate

    try:
        data = translate.streamToMidiFile(score).writestr()
    except Exception as error:
        raise DatasetError(f"music21 cannot translate {source} to MIDI: {_one_line(error)}; skip this work") from error

    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(mido_object=_rescaled_midi(data, _CORPUS_TICKS_PER_QUARTER))
    except Exception as error:
        raise DatasetError(f"cannot read music21's MIDI for {source}: {_one_line(error)}; skip this work") from error
    parts = _parts_from_midi(midi, f"music21 score {source}")
    return Piece(piece_id=piece_id, source=source, parts=parts)


def _parts_from_midi(midi: pretty_midi.PrettyMIDI, label: str) -> tuple[Part, ...]:
    """One Part per pretty_midi instrument with notes (drums kept with ``is_drum``)."""
    parts = []
    for instrument in midi.instruments:
        notes = []
        for note in instrument.notes:
            start = max(0.0, float(note.start))
            end = float(note.end)
            if end <= start:
                continue  # pretty_midi already drops these; a note with no duration does not sound
            notes.append(NoteEvent(int(note.pitch), start, end, min(127, max(1, int(note.velocity)))))
        if not notes:
            continue
        notes.sort(key=lambda event: (event.start_s, event.pitch, event.end_s))
        name = instrument.name.strip() or ("drums" if instrument.is_drum else f"program {instrument.program}")
        parts.append(Part(name, int(instrument.program), bool(instrument.is_drum), tuple(notes)))
    if not parts:
        raise DatasetError(f"{label} has no notes; remove it or choose another piece")
    return tuple(parts)


def midi_piece_id(path: str | os.PathLike[str]) -> str:
    """Stable id of a MIDI file on its own: its file-system-safe stem (``songs/a b.mid`` -> ``a_b``)."""
    return safe_piece_id(Path(path).stem)


def midi_piece_ids(paths: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str]) -> list[str]:
    """Unique ids for MIDI files under ``root``, in the order given: the stem where it is unique,
    else the path relative to ``root`` without suffix (``rock/song.mid`` -> ``rock_song``), else
    with its suffix too."""
    root = Path(root)
    files = [Path(path) for path in paths]
    stems = [midi_piece_id(path) for path in files]
    stem_counts = collections.Counter(stems)
    ids = []
    for path, stem in zip(files, stems, strict=True):
        if stem_counts[stem] == 1:
            ids.append(stem)
            continue
        try:
            relative = path.relative_to(root)
        except ValueError:
            relative = path
        ids.append(safe_piece_id(relative.with_suffix("").as_posix()))
    id_counts = collections.Counter(ids)
    ids = [
        safe_piece_id(f"{piece_id}{path.suffix}") if id_counts[piece_id] > 1 else piece_id
        for path, piece_id in zip(files, ids, strict=True)
    ]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"MIDI files under {root} have clashing names after making ids safe; rename them")
    return ids


def list_midi_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Every ``.mid``/``.midi`` file under ``folder`` (recursive, any case), sorted by relative path.

    Raises DatasetError if the folder is missing or holds no MIDI file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"MIDI folder not found: {folder}; give a folder of .mid/.midi files")
    files = [path for path in folder.rglob("*") if path.suffix.lower() in MIDI_SUFFIXES and path.is_file()]
    if not files:
        raise DatasetError(f"no .mid or .midi files under {folder}; give a folder of MIDI files")
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def piece_from_midi_file(path: str | os.PathLike[str], piece_id: str | None = None) -> Piece:
    """A MIDI file as a Piece: one Part per pretty_midi instrument with notes (name = track name,
    program as written, drums kept with ``is_drum=True``). ``piece_id`` defaults to
    :func:`midi_piece_id`. Tempo changes are applied by pretty_midi (times in seconds); pitch
    bends and controllers are dropped, and so are notes of zero length (pretty_midi skips them,
    drum hits whose note-off shares the note-on tick included). Raises MidiError if the file
    cannot be read, DatasetError if it holds no notes."""
    path = Path(path)
    if not path.is_file():
        raise MidiError(f"MIDI file not found: {path}")

    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as error:  # pretty_midi/mido raise many types on corrupt files
        raise MidiError(f"cannot read MIDI file {path}: not a valid MIDI file ({_one_line(error)})") from error
    parts = _parts_from_midi(midi, f"MIDI file {path}")
    return Piece(piece_id=piece_id or midi_piece_id(path), source=str(path), parts=parts)
