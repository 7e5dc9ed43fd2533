"""The validation set of ``compare_basic_pitch.py``: held-out pieces, a held-out SoundFont, 20-30 s clips.

* Ensembles: ``polyamp synth --corpus --splits <split> --parts 2-5`` renders music21 corpus works of
  the test (or validation) split, never the train split, with the SoundFont no PolyAMP model was
  trained on (TimGM6mb); programs are the synth's balanced draw over the 11 families.
* Piano: ``polyamp synth`` has no piano-only option, so the same library functions render it here:
  the split's works in the synth's seeded order (the ensemble pieces left out), arranged as the
  synth arranges them (``ArrangeOptions(program_strategy="keep", parts_range=(2, 4))``: humanised
  timing and dynamics, tempo change) and then every part merged into one part of program 0
  (Acoustic Grand Piano; same-pitch overlaps split as the synth does within a part), rendered with
  ``SoundFontRenderer`` and written with ``write_slakh_track``.
* Reserved evaluation works are never listed by the synth's source code; each clip's source is
  checked again here, and so is its split.
* One clip per piece: a length drawn uniformly in [min, max] s and, among 64 random start times, the
  one whose two cuts cross the fewest notes (ensembles: with 2-5 instruments playing in the clip).
  Reference notes are the piece's notes clipped to the clip (a note across a cut starts at 0 s or
  ends at the clip's end); the audio gets 10 ms fades at the cuts and is written as 16 kHz 16-bit WAV.

Everything is cached in ``<work-dir>/set-<hash of the settings>``; ``clips.json`` there is the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

START_CANDIDATES = 64
MIN_CLIP_NOTES = 10
CLIP_FADE_S = 0.01
ENSEMBLE_PARTS = (2, 5)
PIANO_PARTS = (2, 4)
PIANO_PROGRAM = 0
SET_VERSION = 1
"""Bumped when the way clips are made changes (a new cache folder then)."""


@dataclasses.dataclass(frozen=True)
class RefNote:
    """A reference note: MIDI ``pitch``, ``start_s`` < ``end_s`` (s), ``velocity``, GM ``program``, stem
    ``instrument``."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int
    program: int = PIANO_PROGRAM
    instrument: int = 0
    is_drum: bool = False

    def row(self) -> list:
        return [self.start_s, self.end_s, self.pitch, self.velocity, self.program, self.instrument, self.is_drum]

    @classmethod
    def from_row(cls, row: Sequence) -> RefNote:
        start_s, end_s, pitch, velocity, program, instrument, is_drum = row
        return cls(
            int(pitch), float(start_s), float(end_s), int(velocity), int(program), int(instrument), bool(is_drum)
        )


@dataclasses.dataclass(frozen=True)
class SetConfig:
    """What the set is made of; its hash names the cache folder."""

    split: str = "test"
    soundfont: str = "/usr/share/sounds/sf2/TimGM6mb.sf2"
    seed: int = 0
    ensemble_clips: int = 20
    piano_clips: int = 10
    min_clip_s: float = 20.0
    max_clip_s: float = 30.0
    max_piece_s: float = 60.0
    version: int = SET_VERSION

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _write_json(path: Path, data: Any) -> None:
    from polyamp.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


# ------------------------------------------------------------------------------------------------
# Clip choice and cutting (pure functions).


def crossing_count(starts: np.ndarray, ends: np.ndarray, time_s: float, margin_s: float = 1e-3) -> int:
    """Notes sounding across ``time_s``: started before it and ending after it (``margin_s`` either side)."""
    return int(np.sum((starts < time_s - margin_s) & (ends > time_s + margin_s)))


def choose_clip_start(
    notes: Sequence[RefNote],
    duration_s: float,
    length_s: float,
    rng: np.random.Generator,
    instrument_range: tuple[int, int] | None = None,
    min_notes: int = MIN_CLIP_NOTES,
    candidates: int = START_CANDIDATES,
) -> float | None:
    """Start (s) of a ``length_s`` clip within ``[0, duration_s]`` whose cuts cross the fewest notes.

    Among ``candidates`` uniform random starts, only those with at least ``min_notes`` notes starting
    in the clip (and, with ``instrument_range`` (low, high), that many distinct instruments with a note
    in the clip) qualify; ties go to the earlier draw. None when the audio is shorter than the clip
    or no candidate qualifies.
    """
    if duration_s < length_s or not notes:
        return None
    starts = np.asarray([note.start_s for note in notes], np.float64)
    ends = np.asarray([note.end_s for note in notes], np.float64)
    instruments = np.asarray([note.instrument for note in notes], np.int64)
    best: tuple[int, float] | None = None
    for start in rng.uniform(0.0, duration_s - length_s, candidates):
        stop = start + length_s
        onsets_inside = (starts >= start) & (starts < stop)
        if int(onsets_inside.sum()) < min_notes:
            continue
        if instrument_range is not None:
            playing = len(np.unique(instruments[(starts < stop) & (ends > start)]))
            if not instrument_range[0] <= playing <= instrument_range[1]:
                continue
        score = crossing_count(starts, ends, start) + crossing_count(starts, ends, stop)
        if best is None or score < best[0]:
            best = (score, float(start))
    return None if best is None else best[1]


def clip_notes(notes: Sequence[RefNote], start_s: float, end_s: float) -> list[RefNote]:
    """The notes sounding in ``[start_s, end_s)``, clipped to it and shifted so the clip starts at 0 s,
    sorted by (start, pitch)."""
    clipped = []
    for note in notes:
        if note.start_s >= end_s or note.end_s <= start_s:
            continue
        start = max(note.start_s, start_s) - start_s
        end = min(note.end_s, end_s) - start_s
        if end > start:
            clipped.append(dataclasses.replace(note, start_s=start, end_s=end))
    return sorted(clipped, key=lambda note: (note.start_s, note.pitch, note.instrument))


def cut_audio(
    samples: np.ndarray, sample_rate_hz: int, start_s: float, length_s: float, fade_s: float = CLIP_FADE_S
) -> np.ndarray:
    """float32 ``[round(length_s * rate)]`` samples from ``start_s`` (zero past the end), with linear
    fades of ``fade_s`` at both cuts so the cuts are not clicks."""
    first = int(round(start_s * sample_rate_hz))
    count = int(round(length_s * sample_rate_hz))
    clip = np.zeros(count, np.float32)
    piece = np.asarray(samples, np.float32)[first : first + count]
    clip[: len(piece)] = piece
    fade = min(int(round(fade_s * sample_rate_hz)), count // 2)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
        clip[:fade] *= ramp
        clip[count - fade :] *= ramp[::-1]
    return clip


def clip_rng(seed: int, piece_id: str) -> np.random.Generator:
    """The generator of one piece's clip (length and start), the same in any process and order."""
    digest = hashlib.sha256(f"compare-basic-pitch\x00{int(seed)}\x00{piece_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def piano_piece(piece: Any) -> Any:
    """``piece`` with its pitched parts merged into one part of program 0 (drum parts dropped);
    None when fewer than two pitched parts have notes."""
    from polyamp.synth.arrange import merge_same_pitch_overlaps
    from polyamp.synth.piece import Part

    pitched = [part for part in piece.parts if not part.is_drum and part.notes]
    if len(pitched) < 2:
        return None
    notes = merge_same_pitch_overlaps([note for part in pitched for note in part.notes])
    return piece.replace_parts((Part("piano", PIANO_PROGRAM, False, tuple(notes), 0.0),))


# ------------------------------------------------------------------------------------------------
# Rendering.


def polyamp_command() -> list[str]:
    """The ``polyamp`` CLI of the running interpreter's environment."""
    script = Path(sys.executable).with_name("polyamp")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from polyamp.cli.main import run; run()"]


def render_ensembles(config: SetConfig, output_dir: Path, num_pieces: int) -> Path:
    """``polyamp synth`` of the first ``num_pieces`` works of ``config.split`` into ``output_dir``;
    returns the split folder. Reuses a finished render of the same settings."""
    done = output_dir / "done.json"
    settings = {"pieces": num_pieces, "config": config.key()}
    if done.is_file() and json.loads(done.read_text(encoding="utf-8")) == settings:
        return output_dir / config.split
    low, high = ENSEMBLE_PARTS
    command = polyamp_command() + [
        "synth",
        str(output_dir),
        "--soundfont",
        config.soundfont,
        "--corpus",
        "--splits",
        config.split,
        "--parts",
        f"{low}-{high}",
        "--max-pieces",
        str(num_pieces),
        "--seed",
        str(config.seed),
        "--overwrite",
        "--gin-param",
        f"ArrangeOptions.max_piece_s = {float(config.max_piece_s)}",
    ]
    print("rendering ensembles: " + " ".join(command), flush=True)
    subprocess.run(command, check=True)
    _write_json(done, settings)
    return output_dir / config.split


def render_piano(config: SetConfig, output_dir: Path, num_pieces: int, exclude: set[str]) -> Path:
    """Piano-only renders (module docstring) of up to ``num_pieces`` works of ``config.split`` not in
    ``exclude`` (piece ids) into ``output_dir/<split>``; returns that folder. Reuses a finished render."""
    from polyamp.constants import SAMPLE_RATE_HZ
    from polyamp.data.slakh_layout import write_slakh_track
    from polyamp.errors import PolyampError
    from polyamp.synth.arrange import ArrangeOptions
    from polyamp.synth.pipeline import (
        RELEASE_TAIL_S,
        list_sources,
        load_piece,
        render_settings,
        source_piece_id,
        sources_in_splits,
    )
    from polyamp.synth.render import SoundFontRenderer

    split_dir = output_dir / config.split
    done = output_dir / "done.json"
    settings = {"pieces": num_pieces, "config": config.key(), "exclude": sorted(exclude)}
    if done.is_file() and json.loads(done.read_text(encoding="utf-8")) == settings:
        return split_dir
    options = ArrangeOptions(program_strategy="keep", parts_range=PIANO_PARTS, max_piece_s=config.max_piece_s)
    candidates = sources_in_splits(list_sources(None, True, None, config.seed), [config.split], 0.1, 0.1)
    written = 0
    with SoundFontRenderer(config.soundfont, sample_rate_hz=SAMPLE_RATE_HZ, **render_settings()) as renderer:
        for source in candidates:
            if written >= num_pieces:
                break
            if source_piece_id(source) in exclude:
                continue
            try:
                piece = piano_piece(load_piece(source, options, config.seed))
            except PolyampError as error:
                print(f"piano: skipped {source.path}: {str(error).splitlines()[0]}", flush=True)
                continue
            if piece is None or piece.duration_s < config.max_clip_s:
                continue
            duration_s = piece.duration_s + RELEASE_TAIL_S
            stem = renderer.render_part(piece.parts[0], duration_s)
            written += 1
            write_slakh_track(
                split_dir / f"Track{written:05d}",
                piece,
                [stem],
                sample_rate_hz=SAMPLE_RATE_HZ,
                metadata_extra={
                    "soundfont": Path(config.soundfont).name,
                    "seed": config.seed,
                    "arrangement": "piano: all parts merged into program 0",
                },
                overwrite=True,
            )
            print(f"piano: rendered {source.path} ({duration_s:.1f} s)", flush=True)
    _write_json(done, settings)
    return split_dir


# ------------------------------------------------------------------------------------------------
# Clips.


def track_notes(track: Any) -> list[RefNote]:
    """The reference notes of a Slakh track's rendered stems (``instrument`` = stem number)."""
    from polyamp.data.slakh_layout import track_sequence

    return [
        RefNote(
            int(note.pitch),
            float(note.start_time),
            float(note.end_time),
            int(note.velocity),
            int(note.program),
            int(note.instrument),
            bool(note.is_drum),
        )
        for note in track_sequence(track).notes
    ]


def check_held_out(source: str, piece_id: str, split: str) -> None:
    """Raises RuntimeError if a clip's source is a reserved work or its piece is not in ``split``."""
    from polyamp.synth.pipeline import split_of
    from polyamp.synth.reserved import is_reserved

    if is_reserved(source):
        raise RuntimeError(f"{source} is a reserved evaluation work: it must never be rendered")
    if split_of(piece_id, 0.1, 0.1) != split:
        raise RuntimeError(f"{piece_id} is not in the {split} split")


def make_clips(
    split_dir: Path,
    kind: str,
    count: int,
    clips_dir: Path,
    config: SetConfig,
    instrument_range: tuple[int, int] | None,
) -> list[dict[str, Any]]:
    """One clip per track of ``split_dir`` (track order) until ``count``; manifest entries."""
    import soundfile

    from polyamp.audio.decode import load_audio
    from polyamp.constants import SAMPLE_RATE_HZ
    from polyamp.data.slakh_layout import find_slakh_tracks

    clips: list[dict[str, Any]] = []
    for track in find_slakh_tracks(split_dir):
        if len(clips) >= count:
            break
        piece_id = str(track.metadata.get("piece_id", track.track_id))
        source = str(track.metadata.get("source", ""))
        check_held_out(source, piece_id, config.split)
        notes = [note for note in track_notes(track) if not note.is_drum]
        samples = load_audio(track.mix_path)
        duration_s = len(samples) / SAMPLE_RATE_HZ
        rng = clip_rng(config.seed, piece_id)
        length_s = float(rng.uniform(config.min_clip_s, config.max_clip_s))
        start_s = choose_clip_start(notes, duration_s, length_s, rng, instrument_range)
        if start_s is None:
            continue
        reference = clip_notes(notes, start_s, start_s + length_s)
        audio = clips_dir / f"{kind}-{len(clips):02d}.wav"
        clips_dir.mkdir(parents=True, exist_ok=True)
        soundfile.write(
            audio, cut_audio(samples, SAMPLE_RATE_HZ, start_s, length_s), SAMPLE_RATE_HZ, "PCM_16", format="WAV"
        )
        clips.append(
            {
                "id": audio.stem,
                "kind": kind,
                "audio": str(audio),
                "duration_s": round(length_s * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ,
                "piece_id": piece_id,
                "source": source,
                "track": str(track.track_dir),
                "clip_start_s": start_s,
                "num_instruments": len({note.instrument for note in reference}),
                "programs": sorted({note.program for note in reference}),
                "notes": [note.row() for note in reference],
            }
        )
    return clips


def build_set(config: SetConfig, work_dir: Path) -> dict[str, Any]:
    """The clips manifest (module docstring), built once per settings and then read from the cache."""
    set_dir = work_dir / f"set-{config.key()}"
    manifest_path = set_dir / "clips.json"
    if manifest_path.is_file():
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    if not Path(config.soundfont).is_file():
        raise FileNotFoundError(f"SoundFont not found: {config.soundfont} (Debian: apt-get install timgm6mb-soundfont)")
    ensembles: list[dict[str, Any]] = []
    num_pieces = math.ceil(1.5 * config.ensemble_clips) + 4
    for attempt in range(3):
        render_dir = set_dir / f"render-ensemble-{num_pieces}"
        split_dir = render_ensembles(config, render_dir, num_pieces)
        ensembles = make_clips(split_dir, "ensemble", config.ensemble_clips, set_dir / "clips", config, ENSEMBLE_PARTS)
        if len(ensembles) >= config.ensemble_clips or attempt == 2:
            break
        num_pieces *= 2
    manifest_file = render_dir / "synth_manifest.json"
    used = {track["piece_id"] for track in json.loads(manifest_file.read_text(encoding="utf-8"))["tracks"]}
    piano_dir = render_piano(config, set_dir / "render-piano", config.piano_clips + 2, used)
    piano = make_clips(piano_dir, "piano", config.piano_clips, set_dir / "clips", config, None)
    if len(ensembles) < config.ensemble_clips or len(piano) < config.piano_clips:
        raise RuntimeError(
            f"only {len(ensembles)} ensemble and {len(piano)} piano clips could be cut "
            f"(asked {config.ensemble_clips} and {config.piano_clips}); ask for fewer or use another --split"
        )
    manifest = {"config": dataclasses.asdict(config), "key": config.key(), "clips": ensembles + piano}
    _write_json(manifest_path, manifest)
    return manifest
