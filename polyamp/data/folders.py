"""Finding audio + MIDI pairs on disk: a MAESTRO folder as distributed, or any folder.

- MAESTRO: ``root/maestro-v*.csv`` or ``root/maestro-v*.json`` lists every piece with its
  ``split``, ``midi_filename`` and ``audio_filename`` (relative to ``root``).
- Any folder: audio files (``.wav .flac .mp3 .ogg``) anywhere below it with a MIDI file of the
  same stem (``.mid .midi``) next to them. A top-level ``train``/``validation``/``test``
  sub-folder (also ``valid``, ``val``, ``eval``, ``dev``) sets the split; otherwise ``train``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import pathlib
import re
from typing import Any

from polyamp.errors import DatasetError

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
"""Preferred first when one stem has several audio files."""
MIDI_SUFFIXES = (".mid", ".midi")
SPLITS = ("train", "validation", "test")
_SPLIT_FOLDER_NAMES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "eval": "validation",
    "test": "test",
    "testing": "test",
}
MAESTRO_COLUMNS = ("split", "midi_filename", "audio_filename")
_MAESTRO_INDEX = re.compile(r"^maestro-v(?P<version>[0-9][0-9.]*)\.(?P<kind>csv|json)$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class AudioMidiPair:
    """One piece: its id (path below the root, no suffix), audio file, MIDI file and split."""

    example_id: str
    audio_path: pathlib.Path
    midi_path: pathlib.Path
    split: str = "train"


def find_audio_midi_pairs(
    folder: str | os.PathLike[str], skipped: list[pathlib.Path] | None = None
) -> list[AudioMidiPair]:
    """Every audio file below ``folder`` (recursive) that has a same-stem MIDI file beside it.

    Audio files without MIDI are skipped: they are logged as one warning and appended to
    ``skipped`` if given. Sorted by example id. Raises DatasetError if ``folder`` is not a
    directory or holds no pair.
    """
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}" if not root.exists() else f"not a folder: {root}")

    audio_by_stem: dict[pathlib.Path, list[pathlib.Path]] = {}
    midi_by_stem: dict[pathlib.Path, pathlib.Path] = {}
    for directory, _, names in os.walk(root, followlinks=True):
        for name in names:
            if name.startswith("."):
                continue
            path = pathlib.Path(directory, name)
            suffix = path.suffix.lower()
            if suffix in AUDIO_SUFFIXES:
                audio_by_stem.setdefault(path.with_suffix(""), []).append(path)
            elif suffix in MIDI_SUFFIXES:
                stem = path.with_suffix("")
                if stem not in midi_by_stem or suffix == ".mid":
                    midi_by_stem[stem] = path

    pairs = []
    missing_midi: list[pathlib.Path] = []
    for stem, audio_paths in audio_by_stem.items():
        audio_paths.sort(key=lambda path: (AUDIO_SUFFIXES.index(path.suffix.lower()), path.name))
        if stem not in midi_by_stem:
            missing_midi.extend(audio_paths)
            continue
        relative = stem.relative_to(root)
        pairs.append(
            AudioMidiPair(
                example_id=relative.as_posix(),
                audio_path=audio_paths[0],
                midi_path=midi_by_stem[stem],
                split=_split_from_path(relative),
            )
        )
    if missing_midi:
        missing_midi.sort()
        shown = ", ".join(str(path) for path in missing_midi[:5])
        more = f" and {len(missing_midi) - 5} more" if len(missing_midi) > 5 else ""
        logger.warning("skipping %d audio file(s) without a MIDI file: %s%s", len(missing_midi), shown, more)
        if skipped is not None:
            skipped.extend(missing_midi)
    if not pairs:
        raise DatasetError(
            f"no audio files with same-name MIDI files ({'/'.join(AUDIO_SUFFIXES)} + .mid/.midi) in {root}"
        )
    return sorted(pairs, key=lambda pair: pair.example_id)


def _split_from_path(relative: pathlib.PurePath) -> str:
    if len(relative.parts) > 1:
        return _SPLIT_FOLDER_NAMES.get(relative.parts[0].lower(), "train")
    return "train"


def _maestro_index_files(root: pathlib.Path) -> list[pathlib.Path]:
    """MAESTRO index files in ``root``, newest version first, JSON before CSV for the same version."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _MAESTRO_INDEX.match(path.name)
        if match and path.is_file():
            version = tuple(int(number) for number in match["version"].split(".") if number)
            found.append((version, match["kind"].lower() == "json", path))
    found.sort(reverse=True)
    return [path for _, _, path in found]


def is_maestro_folder(root: str | os.PathLike[str]) -> bool:
    """True if ``root`` holds a MAESTRO index (``maestro-v*.csv`` or ``maestro-v*.json``)."""
    return bool(_maestro_index_files(pathlib.Path(root)))


def read_maestro_index(root: str | os.PathLike[str]) -> list[AudioMidiPair]:
    """The pieces listed by ``root``'s MAESTRO index (newest version; JSON or CSV).

    JSON may be column-oriented (``{"split": {"0": "train", ...}, ...}``, MAESTRO v3) or a list
    of rows (v1/v2). Paths are relative to ``root``. Raises DatasetError if there is no index,
    it is malformed, a split is unknown, or a listed file is missing.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DatasetError(f"MAESTRO folder not found: {root}")
    indexes = _maestro_index_files(root)
    if not indexes:
        raise DatasetError(f"no MAESTRO index (maestro-v*.csv or maestro-v*.json) in {root}")
    index = indexes[0]
    rows = _read_json_rows(index) if index.suffix.lower() == ".json" else _read_csv_rows(index)
    if not rows:
        raise DatasetError(f"MAESTRO index {index} lists no pieces")

    pairs = []
    missing = []
    for number, row in enumerate(rows):
        absent = [column for column in MAESTRO_COLUMNS if not str(row.get(column) or "").strip()]
        if absent:
            raise DatasetError(f"MAESTRO index {index} row {number}: missing {', '.join(absent)}")
        split = str(row["split"]).strip().lower()
        if split not in SPLITS:
            raise DatasetError(
                f"MAESTRO index {index} row {number}: unknown split {row['split']!r} (expected {', '.join(SPLITS)})"
            )
        audio_path = root / str(row["audio_filename"]).strip()
        midi_path = root / str(row["midi_filename"]).strip()
        for path in (audio_path, midi_path):
            if not path.is_file():
                missing.append(path)
        example_id = pathlib.PurePosixPath(str(row["audio_filename"]).strip().replace("\\", "/")).with_suffix("")
        pairs.append(AudioMidiPair(str(example_id), audio_path, midi_path, split))
    if missing:
        more = f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else ""
        raise DatasetError(f"file listed in MAESTRO index {index} not found: {missing[0]}{more}")
    return pairs


def _read_csv_rows(index: pathlib.Path) -> list[dict[str, Any]]:
    try:
        with open(index, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            absent = [column for column in MAESTRO_COLUMNS if column not in columns]
            if absent:
                raise DatasetError(f"MAESTRO index {index} lacks column(s) {', '.join(absent)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"cannot read MAESTRO index {index}: {error}") from error


def _read_json_rows(index: pathlib.Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DatasetError(f"cannot read MAESTRO index {index}: {error}") from error
    if isinstance(data, list):  # MAESTRO v1/v2: a list of row objects
        if not all(isinstance(row, dict) for row in data):
            raise DatasetError(f"MAESTRO index {index} is not a list of row objects")
        rows = data
    elif isinstance(data, dict):  # MAESTRO v3: column -> {row number: value}
        absent = [column for column in MAESTRO_COLUMNS if column not in data]
        if absent:
            raise DatasetError(f"MAESTRO index {index} lacks column(s) {', '.join(absent)}")
        if not all(isinstance(values, dict) for values in data.values()):
            raise DatasetError(f"MAESTRO index {index} is not column-oriented JSON")
        keys = sorted(data["split"], key=lambda key: (int(key) if str(key).isdigit() else 0, str(key)))
        rows = [{column: values.get(key) for column, values in data.items()} for key in keys]
    else:
        raise DatasetError(f"MAESTRO index {index} is neither a list of rows nor column-oriented JSON")
    absent = [column for column in MAESTRO_COLUMNS if rows and column not in rows[0]]
    if absent:
        raise DatasetError(f"MAESTRO index {index} lacks column(s) {', '.join(absent)}")
    return rows
