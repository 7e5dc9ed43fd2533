"""The Slakh2100 on-disk layout: writing rendered pieces as Slakh tracks, and reading Slakh tracks back.

A track is a folder ``TrackNNNNN/`` holding ``mix.flac``, ``stems/Sxx.flac`` (one per rendered
instrument), ``MIDI/Sxx.mid`` (one per instrument), ``all_src.mid`` and ``metadata.yaml``, whose
``stems:`` mapping gives each stem's ``program_num`` (0-based General MIDI; Slakh writes 128 for
drums), ``is_drum``, ``inst_class`` and ``audio_rendered``. A dataset is ``<root>/<split>/TrackNNNNN``
with splits ``train``, ``validation``, ``test`` and (slakh2100_flac_redux) ``omitted``, the
duplicates, which are read only when asked for by name.

Decisions:

- Stem files are found at ``stems/<id>.flac`` (or ``.wav``, as in BabySlakh) and ``MIDI/<id>.mid``;
  ``audio_dir``/``midi_dir`` in metadata.yaml are ignored (one released track has a wrong path there).
- Stems with ``audio_rendered: false`` are not in the mix, so their notes are not in the labels.
  A stem that metadata says was rendered but whose audio or MIDI file is missing makes the whole
  track unusable (DatasetError naming the file): its sound is in the mix, its notes would be lost.
- Notes take ``program``/``is_drum`` from metadata.yaml, not from the stem MIDI file, and
  ``instrument`` is the stem number (``S03`` -> 3). Drum stems keep their MIDI program (Slakh's 128
  becomes 0); the label code skips ``is_drum`` notes.
- The writer stores peak-normalised 16-bit audio whose stems sum to the mix exactly (in integers).
  ``normalization_factor`` and ``overall_gain`` both hold the linear gain that was applied (Slakh
  keeps a -13 dB loudness target in ``normalization_factor``; nothing here reads either key).
  ``integrated_loudness`` is not written. ``inst_class`` uses Slakh's names of the GM classes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyamp.constants import SAMPLE_RATE_HZ
from polyamp.errors import AudioError, DatasetError, OutputExistsError, PolyampError

if TYPE_CHECKING:
    from note_seq.protobuf.music_pb2 import NoteSequence

    from polyamp.synth.piece import Piece

logger = logging.getLogger(__name__)

__all__ = [
    "DRUMS_CLASS",
    "GM_PROGRAM_NAMES",
    "MIDI_TICKS_PER_QUARTER",
    "SLAKH_SPLITS",
    "SlakhStem",
    "SlakhTrack",
    "find_slakh_tracks",
    "gm_class_name",
    "read_track_metadata",
    "track_sequence",
    "write_slakh_track",
]

# --------------------------------------------------------------------------------------------------------
# General MIDI tables
# --------------------------------------------------------------------------------------------------------

GM_PROGRAM_NAMES: tuple[str, ...] = (
    # 0-7 piano
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    # 8-15 chromatic percussion
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    # 16-23 organ
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion",
    # 24-31 guitar
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics",
    # 32-39 bass
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    # 40-47 strings
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    # 48-55 ensemble
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs",
    "Synth Voice", "Orchestra Hit",
    # 56-63 brass
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1",
    "Synth Brass 2",
    # 64-71 reed
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet",
    # 72-79 pipe
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    # 80-87 synth lead
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    # 88-95 synth pad
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)",
    "Pad 7 (halo)", "Pad 8 (sweep)",
    # 96-103 synth effects
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    # 104-111 ethnic
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    # 112-119 percussive
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum",
    "Reverse Cymbal",
    # 120-127 sound effects
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
)  # fmt: skip
"""Name of each General MIDI program 0-127 (0-based)."""

# Slakh's names for the 16 GM classes of 8 programs: GM's "Ensemble" is "Strings (continued)" and its
# "Synth Effects" is "Sound Effects", as in Slakh's metadata.
_GM_CLASS_NAMES: tuple[str, ...] = (
    "Piano", "Chromatic Percussion", "Organ", "Guitar", "Bass", "Strings", "Strings (continued)", "Brass",
    "Reed", "Pipe", "Synth Lead", "Synth Pad", "Sound Effects", "Ethnic", "Percussive", "Sound Effects",
)  # fmt: skip
DRUMS_CLASS = "Drums"
"""``inst_class`` and ``midi_program_name`` of drum stems, as in Slakh."""

if len(GM_PROGRAM_NAMES) != 128 or len(_GM_CLASS_NAMES) != 16:  # pragma: no cover - guards edits
    raise AssertionError("the General MIDI tables must have 128 program names and 16 class names")


def gm_class_name(program: int, is_drum: bool = False) -> str:
    """Slakh ``inst_class`` of a 0-based GM program (``"Drums"`` for drum tracks)."""
    if is_drum:
        return DRUMS_CLASS
    if not 0 <= int(program) <= 127:
        raise ValueError(f"MIDI program must be 0-127, got {program}")
    return _GM_CLASS_NAMES[int(program) // 8]


# --------------------------------------------------------------------------------------------------------
# Layout names
# --------------------------------------------------------------------------------------------------------

SLAKH_SPLITS: tuple[str, ...] = ("train", "validation", "test", "omitted")
"""Split folders of a Slakh2100 release; ``omitted`` (duplicates) is read only when asked for."""
DEFAULT_SPLITS: tuple[str, ...] = ("train", "validation", "test")
_SPLIT_ALIASES = {"valid": "validation", "val": "validation", "eval": "validation", "dev": "validation"}
METADATA_NAME = "metadata.yaml"
STEMS_DIR = "stems"
MIDI_DIR = "MIDI"
MIX_STEM = "mix"
ALL_SOURCES_NAME = "all_src.mid"
AUDIO_SUFFIXES = (".flac", ".wav")
TARGET_PEAK_DBFS = -1.0
MIDI_TICKS_PER_QUARTER = 960
"""Resolution of written MIDI files: at 120 qpm a tick is 0.52 ms, so times round-trip within 0.26 ms."""
_MIDI_QPM = 120.0
_SILENCE_PEAK = 1e-4  # -80 dBFS, as polyamp.audio.decode.SILENCE_PEAK
_SAME_ONSET_S = 1e-3  # same-pitch notes starting closer than this are one note
_TRACK_NAME = re.compile(r"^Track\d+$")
_STEM_NUMBER = re.compile(r"^S(\d+)$")


# --------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SlakhStem:
    """One instrument of a track: its id (``S03``), GM ``program`` (0-127), ``is_drum``, Slakh
    ``inst_class``, whether its audio was rendered (and so is in the mix) and its files (None if absent)."""

    stem_id: str
    program: int
    is_drum: bool
    inst_class: str
    audio_rendered: bool
    audio_path: Path | None
    midi_path: Path | None
    midi_program_name: str = ""

    @property
    def index(self) -> int:
        """Stem number (``S03`` -> 3): the ``instrument`` of this stem's notes."""
        match = _STEM_NUMBER.match(self.stem_id)
        return int(match.group(1)) if match else -1

    @property
    def family_name(self) -> str:
        """NSynth family name of the stem's program, or ``"drums"``."""
        from polyamp.notes.families import family_name_of

        return family_name_of(self.program, self.is_drum)


@dataclasses.dataclass(frozen=True)
class SlakhTrack:
    """One Slakh track folder: id (``Track00001``), split (None if not in a split folder), files, stems."""

    track_id: str
    split: str | None
    track_dir: Path
    metadata_path: Path
    mix_path: Path
    stems: tuple[SlakhStem, ...]
    all_src_path: Path | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def example_id(self) -> str:
        """``split/TrackNNNNN`` (or just the track id outside a split folder)."""
        return f"{self.split}/{self.track_id}" if self.split else self.track_id

    @property
    def rendered_stems(self) -> tuple[SlakhStem, ...]:
        """Stems whose audio is in the mix, in stem order."""
        return tuple(stem for stem in self.stems if stem.audio_rendered)


def _load_yaml(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(
            f"Slakh track {path.parent} has no {path.name}: re-download or re-render the track, or remove it"
        ) from None
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise DatasetError(
            f"cannot read {path}: not valid YAML{where} ({problem}); re-download or re-render the track"
        ) from error


def _find_audio(folder: Path, stem: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _short_repr(value: Any) -> str:
    """``repr`` cut to a few items and characters: YAML aliases can make a value of a billion elements
    out of a few lines (each repeated alias is the same object), which a plain repr would spell out."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 2, 4, 4, 40, 40
    return short.repr(value)


def _metadata_bool(value: Any, path: Path, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise DatasetError(f"bad {path}: {what} must be true or false, got {_short_repr(value)}")


def _parse_stem(stem_id: str, entry: Any, track_dir: Path, path: Path) -> SlakhStem:
    if not isinstance(entry, dict):
        raise DatasetError(f"bad {path}: stem {stem_id} is not a mapping")
    for key in ("program_num", "is_drum", "audio_rendered"):
        if key not in entry:
            raise DatasetError(f"bad {path}: stem {stem_id} has no {key}")
    is_drum = _metadata_bool(entry["is_drum"], path, f"stem {stem_id} is_drum")
    audio_rendered = _metadata_bool(entry["audio_rendered"], path, f"stem {stem_id} audio_rendered")
    program = entry["program_num"]
    if isinstance(program, bool) or not isinstance(program, int):
        raise DatasetError(f"bad {path}: stem {stem_id} program_num must be an integer, got {_short_repr(program)}")
    if not 0 <= program <= 127:
        if not is_drum:
            raise DatasetError(f"bad {path}: stem {stem_id} program_num must be 0-127, got {program}")
        program = 0  # Slakh writes 128 for drum kits
    inst_class = entry.get("inst_class") or gm_class_name(program, is_drum)
    program_name = entry.get("midi_program_name") or ""
    for key, value in (("inst_class", inst_class), ("midi_program_name", program_name)):
        if not isinstance(value, str):
            raise DatasetError(f"bad {path}: stem {stem_id} {key} must be text, got {_short_repr(value)}")
    audio_path = _find_audio(track_dir / STEMS_DIR, stem_id)
    midi_path = track_dir / MIDI_DIR / f"{stem_id}.mid"
    if audio_rendered:
        if audio_path is None:
            raise DatasetError(
                f"Slakh track {track_dir}: stem audio {track_dir / STEMS_DIR / (stem_id + '.flac')} is missing "
                f"but {path.name} says it was rendered; re-download or re-render the track"
            )
        if not midi_path.is_file():
            raise DatasetError(
                f"Slakh track {track_dir}: stem MIDI {midi_path} is missing but {path.name} says the stem was "
                "rendered; re-download or re-render the track"
            )
    return SlakhStem(
        stem_id=stem_id,
        program=int(program),
        is_drum=is_drum,
        inst_class=inst_class,
        audio_rendered=audio_rendered,
        audio_path=audio_path,
        midi_path=midi_path if midi_path.is_file() else None,
        midi_program_name=program_name,
    )


def read_track_metadata(track_dir: str | os.PathLike[str], split: str | None = None) -> SlakhTrack:
    """Reads ``track_dir/metadata.yaml`` and checks that the files the track needs exist.

    ``split`` defaults to the parent folder's name when that is a Slakh split. Raises DatasetError
    naming the file for a missing or broken metadata.yaml, a missing mix, or a missing audio/MIDI
    file of a stem that metadata says was rendered. Stem MIDI files are not parsed here.
    """
    track_dir = Path(track_dir)
    if not track_dir.is_dir():
        raise DatasetError(f"Slakh track folder not found: {track_dir}")
    metadata_path = track_dir / METADATA_NAME
    metadata = _load_yaml(metadata_path)
    if not isinstance(metadata, dict):
        raise DatasetError(f"bad {metadata_path}: expected a YAML mapping with a 'stems' entry")
    entries = metadata.get("stems")
    if not isinstance(entries, dict) or not entries:
        raise DatasetError(f"bad {metadata_path}: no 'stems' mapping (stem id -> program_num, is_drum, ...)")
    stems = tuple(
        _parse_stem(str(stem_id), entries[stem_id], track_dir, metadata_path)
        for stem_id in sorted(entries, key=lambda key: (_stem_sort_key(str(key)), str(key)))
    )
    mix_path = _find_audio(track_dir, MIX_STEM)
    if mix_path is None:
        raise DatasetError(f"Slakh track {track_dir}: mix audio {track_dir / 'mix.flac'} is missing")
    if split is None and track_dir.parent.name in SLAKH_SPLITS:
        split = track_dir.parent.name
    all_src = track_dir / ALL_SOURCES_NAME
    return SlakhTrack(
        track_id=track_dir.name,
        split=split,
        track_dir=track_dir,
        metadata_path=metadata_path,
        mix_path=mix_path,
        stems=stems,
        all_src_path=all_src if all_src.is_file() else None,
        metadata=metadata,
    )


def _stem_sort_key(stem_id: str) -> int:
    match = _STEM_NUMBER.match(stem_id)
    return int(match.group(1)) if match else 1 << 30


def _normalise_split(split: str | None) -> str | None:
    if split is None:
        return None
    name = _SPLIT_ALIASES.get(split.lower(), split.lower())
    if name not in SLAKH_SPLITS:
        raise DatasetError(f"unknown Slakh split {split!r}; valid splits: {', '.join(SLAKH_SPLITS)}")
    return name


def _is_track_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and not path.name.startswith(".")
        and (bool(_TRACK_NAME.match(path.name)) or (path / METADATA_NAME).is_file())
    )


def _track_dirs(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if _is_track_dir(path))


def find_slakh_tracks(
    root: str | os.PathLike[str], split: str | None = None, skipped: list[str] | None = None
) -> list[SlakhTrack]:
    """Every usable track under ``root``, sorted by split (train, validation, test, omitted) then id.

    ``root`` may be a dataset root with split folders, a split folder, a folder of track folders
    (BabySlakh) or one track folder. In a dataset root, ``split`` picks one split folder (``omitted``
    only when asked for by name); ``split=None`` reads train, validation and test. A split folder or a
    track folder is read whole whatever ``split`` says. A bad track is skipped with a one-line warning
    and its message appended to ``skipped``; DatasetError if no usable track remains.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"Slakh dataset folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"not a folder: {root} (expected a Slakh dataset, split or track folder)")
    wanted = _normalise_split(split)

    candidates: list[tuple[Path, str | None]]
    if (root / METADATA_NAME).is_file() or _TRACK_NAME.match(root.name):
        split_name = root.parent.name if root.parent.name in SLAKH_SPLITS else None
        candidates = [(root, split_name)]
    else:
        present = [name for name in SLAKH_SPLITS if (root / name).is_dir()]
        if present:
            if wanted is None:
                chosen = [name for name in present if name in DEFAULT_SPLITS]
            elif wanted in present:
                chosen = [wanted]
            else:
                raise DatasetError(f"Slakh dataset {root} has no {wanted!r} split folder (found: {', '.join(present)})")
            candidates = [(path, name) for name in chosen for path in _track_dirs(root / name)]
        else:
            split_name = root.name if root.name in SLAKH_SPLITS else None
            candidates = [(path, split_name) for path in _track_dirs(root)]
    if not candidates:
        raise DatasetError(f"no Slakh tracks (TrackNNNNN folders with {METADATA_NAME}) under {root}")

    tracks = []
    first_problem = ""
    for track_dir, split_name in candidates:
        try:
            tracks.append(read_track_metadata(track_dir, split_name))
        except PolyampError as error:
            first_problem = first_problem or str(error)
            _note_skipped(str(error), skipped)
    if not tracks:
        if len(candidates) == 1:
            raise DatasetError(first_problem)
        raise DatasetError(
            f"no usable Slakh track under {root}: all {len(candidates)} were skipped (first: {first_problem})"
        )
    order = {name: index for index, name in enumerate(SLAKH_SPLITS)}
    return sorted(tracks, key=lambda track: (order.get(track.split or "", -1), track.track_id))


def _note_skipped(message: str, skipped: list[str] | None) -> None:
    logger.warning("skipping Slakh track: %s", message)
    if skipped is not None:
        skipped.append(message)


STEM_MIDI_CACHE_SIZE = 4096
"""Parsed stem MIDI files kept per process (:func:`read_stem_midi`); a stem's notes take tens of KB."""


def read_stem_midi(path: Path) -> NoteSequence:
    """The NoteSequence of one stem MIDI file, parsed once per process while the file is unchanged.

    Training draws a new submix of a track for every crop and parsing the stems' MIDI with
    pretty_midi was most of the cost of an example (60 of 80 ms, session 9). Keyed by path,
    modification time and size, so an edited file is read again. Callers must not modify the result.
    Raises MidiError naming the file (see :func:`polyamp.notes.midi.read_midi`).
    """
    try:
        status = path.stat()
    except OSError:
        status = None
    if status is None:
        from polyamp.notes.midi import read_midi

        return read_midi(path)  # raises the MidiError that names the missing file
    return _read_stem_midi_cached(str(path), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=STEM_MIDI_CACHE_SIZE)
def _read_stem_midi_cached(path: str, mtime_ns: int, size: int) -> NoteSequence:
    from polyamp.notes.midi import read_midi

    return read_midi(path)


def track_sequence(track: SlakhTrack, stem_ids: Iterable[str] | None = None) -> NoteSequence:
    """The notes of the track's rendered stems (or of ``stem_ids`` among them) as one NoteSequence.

    Each note (and control change, pitch bend) gets ``instrument`` = stem number, ``program`` and
    ``is_drum`` from metadata.yaml. Stems not rendered are left out (they are not in the mix).
    Tempos and time signatures come from the first stem read; ``total_time`` is the latest end.
    Raises MidiError naming the file for an unreadable stem MIDI, ValueError for an unknown stem id.
    """
    from note_seq.protobuf import music_pb2

    stems = list(track.rendered_stems)
    if stem_ids is not None:
        wanted = set(stem_ids)
        unknown = wanted - {stem.stem_id for stem in stems}
        if unknown:
            raise ValueError(f"{track.example_id} has no rendered stem(s) {', '.join(sorted(unknown))}")
        stems = [stem for stem in stems if stem.stem_id in wanted]

    sequence = music_pb2.NoteSequence()
    sequence.id = track.example_id
    sequence.filename = str(track.track_dir)
    first = True
    for position, stem in enumerate(track.rendered_stems):
        if stem not in stems:
            continue
        assert stem.midi_path is not None  # read_track_metadata checked rendered stems have MIDI
        stem_sequence = read_stem_midi(Path(stem.midi_path))
        if first:
            sequence.ticks_per_quarter = stem_sequence.ticks_per_quarter
            sequence.tempos.extend(stem_sequence.tempos)
            sequence.time_signatures.extend(stem_sequence.time_signatures)
            first = False
        instrument = stem.index if stem.index >= 0 else position
        for source, target in (
            (stem_sequence.notes, sequence.notes),
            (stem_sequence.control_changes, sequence.control_changes),
            (stem_sequence.pitch_bends, sequence.pitch_bends),
        ):
            for event in source:
                copy = target.add()
                copy.CopyFrom(event)
                copy.instrument = instrument
                copy.program = stem.program
                copy.is_drum = stem.is_drum
        sequence.total_time = max(sequence.total_time, stem_sequence.total_time)
    if first:
        sequence.ticks_per_quarter = MIDI_TICKS_PER_QUARTER
        sequence.tempos.add(time=0.0, qpm=_MIDI_QPM)
    notes = sorted(sequence.notes, key=lambda note: (note.start_time, note.pitch, note.instrument))
    del sequence.notes[:]
    sequence.notes.extend(notes)
    return sequence


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def write_slakh_track(
    track_dir: str | os.PathLike[str],
    piece: Piece,
    stems: Sequence[np.ndarray],
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    metadata_extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes ``piece`` and its rendered ``stems`` as a Slakh track folder; returns ``track_dir``.

    ``stems[i]`` is the mono float audio ``[num_samples]`` of ``piece.parts[i]`` at unit gain and
    ``sample_rate_hz``. Each stem is scaled by its part's ``gain_db``; the sum is peak-normalised to
    -1 dBFS and the same factor is applied to the stems, which are stored as 16-bit FLAC whose
    integer samples sum exactly to ``mix.flac``. A stem quieter than -80 dBFS is stored as not
    rendered (no FLAC, left out of the mix). ``metadata_extra`` (e.g. ``seed``, ``soundfont``) is
    added to metadata.yaml's top level. Everything is written into a hidden sibling folder that is
    renamed into place at the end, so a killed process never leaves a partial track. Refuses an
    existing ``track_dir`` (OutputExistsError) unless ``overwrite``. Identical inputs give
    byte-identical files.
    """
    import soundfile

    track_dir = Path(track_dir)
    if len(stems) != len(piece.parts):
        raise ValueError(f"piece {piece.piece_id} has {len(piece.parts)} parts but {len(stems)} stems were given")
    if int(sample_rate_hz) <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    sample_rate_hz = int(sample_rate_hz)
    extra = _checked_extra(metadata_extra)
    if track_dir.exists() and not overwrite:
        raise OutputExistsError(f"output folder already exists: {track_dir} (use --overwrite to replace it)")
    if track_dir.exists() and not track_dir.is_dir():
        raise OutputExistsError(f"cannot write Slakh track {track_dir}: a file of that name exists")

    pcm_stems, gain = _mix_stems(piece, stems, sample_rate_hz, track_dir)
    mix = np.clip(np.sum(pcm_stems, axis=0), -32768, 32767).astype(np.int16)

    track_dir.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = Path(tempfile.mkdtemp(prefix=f".{track_dir.name}.", suffix=".tmp", dir=track_dir.parent))
    try:
        os.chmod(temp_dir, 0o777 & ~_umask())
        (temp_dir / STEMS_DIR).mkdir()
        (temp_dir / MIDI_DIR).mkdir()
        stem_entries: dict[str, dict[str, Any]] = {}
        for index, (part, pcm) in enumerate(zip(piece.parts, pcm_stems, strict=True)):
            stem_id = f"S{index:02d}"
            rendered = _is_audible(stems[index], part.gain_db)
            (temp_dir / MIDI_DIR / f"{stem_id}.mid").write_bytes(_midi_bytes([part]))
            if rendered:
                soundfile.write(temp_dir / STEMS_DIR / f"{stem_id}.flac", pcm, sample_rate_hz, "PCM_16", format="FLAC")
            stem_entries[stem_id] = _stem_metadata(part, rendered, extra)
        soundfile.write(temp_dir / f"{MIX_STEM}.flac", mix, sample_rate_hz, "PCM_16", format="FLAC")
        all_sources = _midi_bytes(piece.parts)
        (temp_dir / ALL_SOURCES_NAME).write_bytes(all_sources)
        metadata = {
            **extra,
            "UUID": hashlib.md5(all_sources).hexdigest(),
            "audio_dir": STEMS_DIR,
            "midi_dir": MIDI_DIR,
            "lmd_midi_dir": piece.source,
            "normalization_factor": gain,
            "normalized": False,
            "overall_gain": gain,
            "target_peak": TARGET_PEAK_DBFS,
            "sample_rate": sample_rate_hz,
            "piece_id": piece.piece_id,
            "source": piece.source,
            "stems": stem_entries,
        }
        (temp_dir / METADATA_NAME).write_text(_dump_yaml(metadata), encoding="utf-8")
        _move_into_place(temp_dir, track_dir, overwrite)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return track_dir


_RESERVED_KEYS = frozenset(
    {
        "UUID",
        "audio_dir",
        "midi_dir",
        "lmd_midi_dir",
        "normalization_factor",
        "normalized",
        "overall_gain",
        "target_peak",
        "sample_rate",
        "piece_id",
        "source",
        "stems",
    }
)


def _checked_extra(metadata_extra: dict[str, Any] | None) -> dict[str, Any]:
    """``metadata_extra`` with plain YAML values; ValueError for reserved keys or unserialisable values."""
    extra = {str(key): _plain(value) for key, value in (metadata_extra or {}).items()}
    clash = sorted(_RESERVED_KEYS & extra.keys())
    if clash:
        raise ValueError(f"metadata_extra may not set {', '.join(clash)}: the writer sets them")
    try:
        _dump_yaml(extra)
    except Exception as error:
        raise ValueError(f"metadata_extra must hold plain YAML values (str, numbers, lists, dicts): {error}") from error
    return extra


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _dump_yaml(data: dict[str, Any]) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1000)


def _stem_metadata(part: Any, rendered: bool, extra: dict[str, Any]) -> dict[str, Any]:
    from polyamp.notes.families import family_name_of

    soundfont = extra.get("soundfont")
    return {
        "audio_rendered": rendered,
        "family": family_name_of(part.program, part.is_drum),
        "gain_db": float(part.gain_db),
        "inst_class": gm_class_name(part.program, part.is_drum),
        "is_drum": bool(part.is_drum),
        "midi_program_name": DRUMS_CLASS if part.is_drum else GM_PROGRAM_NAMES[part.program],
        "midi_saved": True,
        "name": part.name,
        "plugin_name": os.path.basename(str(soundfont)) if soundfont and rendered else "None",
        "program_num": int(part.program),
    }


def _is_audible(stem: np.ndarray, gain_db: float) -> bool:
    samples = np.asarray(stem, np.float64)
    return samples.size > 0 and float(np.max(np.abs(samples))) * 10.0 ** (gain_db / 20.0) >= _SILENCE_PEAK


def _mix_stems(
    piece: Piece, stems: Sequence[np.ndarray], sample_rate_hz: int, track_dir: Path
) -> tuple[np.ndarray, float]:
    """Stems as int16 PCM ``[num_stems, num_samples]`` (gains and peak normalisation applied) and the gain.

    Stems below -80 dBFS are zeroed (not rendered). The gain brings the float mix to -1 dBFS peak.
    """
    arrays = []
    for index, (part, stem) in enumerate(zip(piece.parts, stems, strict=True)):
        samples = np.asarray(stem, np.float64)
        if samples.ndim == 2 and samples.shape[1] == 1:
            samples = samples[:, 0]
        if samples.ndim != 1:
            raise ValueError(f"stem {index} of piece {piece.piece_id} must be mono [num_samples], got {samples.shape}")
        if not np.all(np.isfinite(samples)):
            raise AudioError(f"cannot write {track_dir}: stem {index} ({part.name}) holds NaN or infinite samples")
        for note in part.notes:
            if not 0 <= note.pitch <= 127:
                raise ValueError(f"part {part.name!r} of piece {piece.piece_id} has MIDI pitch {note.pitch}")
        if not 0 <= part.program <= 127:
            raise ValueError(f"part {part.name!r} of piece {piece.piece_id} has MIDI program {part.program}")
        scaled = samples * 10.0 ** (part.gain_db / 20.0)
        arrays.append(scaled if _is_audible(samples, part.gain_db) else np.zeros_like(scaled))
    num_samples = max([len(array) for array in arrays] + [int(math.ceil(piece.duration_s * sample_rate_hz))])
    padded = np.zeros((len(arrays), num_samples), np.float64)
    for index, array in enumerate(arrays):
        padded[index, : len(array)] = array
    peak = float(np.max(np.abs(padded.sum(axis=0)))) if num_samples else 0.0
    if not peak >= _SILENCE_PEAK:
        raise AudioError(
            f"cannot write {track_dir}: the rendered audio of piece {piece.piece_id} is silent "
            "(peak below -80 dBFS); check the SoundFont and the piece's programs"
        )
    gain = 10.0 ** (TARGET_PEAK_DBFS / 20.0) / peak
    pcm = np.clip(np.round(padded * (gain * 32768.0)), -32768, 32767).astype(np.int16)
    return pcm, float(gain)


def _midi_bytes(parts: Sequence[Any]) -> bytes:
    """A Standard MIDI File with one track per part (program, drum flag, exact note times) as bytes."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=MIDI_TICKS_PER_QUARTER, initial_tempo=_MIDI_QPM)
    for part in parts:
        instrument = pretty_midi.Instrument(program=int(part.program), is_drum=bool(part.is_drum), name=part.name)
        for pitch, start, end, velocity in _playable_notes(part.notes):
            instrument.notes.append(
                pretty_midi.Note(velocity=int(min(max(velocity, 1), 127)), pitch=pitch, start=start, end=end)
            )
        midi.instruments.append(instrument)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def _playable_notes(notes: Iterable[Any]) -> list[tuple[int, float, float, int]]:
    """``(pitch, start_s, end_s, velocity)`` sorted by start, with same-pitch overlaps resolved.

    MIDI cannot hold two sounding notes of one pitch on one channel (the note-offs would be paired
    with the wrong note-ons), so a note ends where the next note of its pitch starts, and notes of
    one pitch that start together become one note lasting to the later end.
    """
    ordered = sorted(notes, key=lambda note: (note.start_s, note.pitch, -note.end_s))
    kept: list[list[Any]] = []
    sounding: dict[int, list[Any]] = {}
    for note in ordered:
        pitch, start, end = int(note.pitch), float(note.start_s), float(note.end_s)
        previous = sounding.get(pitch)
        if previous is not None and start < previous[2]:
            if start - previous[1] < _SAME_ONSET_S:
                previous[2] = max(previous[2], end)
                continue
            previous[2] = start
        entry = [pitch, start, end, int(note.velocity)]
        kept.append(entry)
        sounding[pitch] = entry
    return [(pitch, start, end, velocity) for pitch, start, end, velocity in kept]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_into_place(temp_dir: Path, track_dir: Path, overwrite: bool) -> None:
    """Renames the finished ``temp_dir`` to ``track_dir``, replacing an existing folder if ``overwrite``."""
    old: Path | None = None
    if track_dir.exists():
        if not overwrite:
            raise OutputExistsError(f"output folder already exists: {track_dir} (use --overwrite to replace it)")
        old = Path(tempfile.mkdtemp(prefix=f".{track_dir.name}.", suffix=".old", dir=track_dir.parent))
        os.replace(track_dir, old / track_dir.name)
    try:
        os.rename(temp_dir, track_dir)
    except OSError as error:
        if old is not None:
            os.replace(old / track_dir.name, track_dir)
            shutil.rmtree(old, ignore_errors=True)
        if track_dir.exists():
            raise OutputExistsError(
                f"output folder already exists: {track_dir} (use --overwrite to replace it)"
            ) from error
        raise
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
