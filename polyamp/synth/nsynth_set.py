"""An NSynth-style single-note set rendered from a SoundFont (``polyamp synth --nsynth-notes N``).

Each note is 4 s at 16 kHz, held 3 s then released, as in NSynth; its family is the NSynth
family of the General MIDI program that played it. Families are drawn uniformly (the 11 NSynth
families; never ``other``), then a program of the family, a pitch inside the family's usual
range and an NSynth velocity (25, 50, 75, 100, 127). Notes are written as official NSynth
TFRecords, ``nsynth-train.tfrecord-SSSSS-of-NNNNN``, one shard per Beam work item, so the same
seed gives byte-identical shards.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

from polyamp.constants import MAX_MIDI_PITCH, MIN_MIDI_PITCH, SAMPLE_RATE_HZ
from polyamp.errors import ConfigError, OutputExistsError

NOTES_PER_SHARD = 500
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)
SILENT_PEAK = 1e-4
"""A rendered note quieter than this (-80 dBFS) is dropped: the SoundFont has no sound there."""


@dataclasses.dataclass(frozen=True)
class NoteSpec:
    """One note to render: family index, GM program, MIDI pitch, velocity, and its NSynth names."""

    family: int
    program: int
    pitch: int
    velocity: int
    instrument_str: str

    def describe(self) -> str:
        return f"{self.instrument_str} pitch {self.pitch} velocity {self.velocity}"


def plan_notes(num_notes: int, seed: int, soundfont_name: str) -> list[NoteSpec]:
    """``num_notes`` distinct notes (no two share instrument, pitch and velocity), seeded."""
    from polyamp.notes.families import FAMILY_NAMES, NUM_NSYNTH_FAMILIES
    from polyamp.synth.arrange import FAMILY_PITCH_RANGES, assignable_programs, piece_rng

    rng = piece_rng(seed, "nsynth-set")
    stem = "".join(character if character.isalnum() else "_" for character in soundfont_name.lower())
    notes: list[NoteSpec] = []
    seen: set[tuple[int, int, int]] = set()
    attempts = 0
    while len(notes) < num_notes:
        attempts += 1
        if attempts > 50 * num_notes + 1000:
            raise ConfigError(f"cannot draw {num_notes} distinct notes; ask for fewer --nsynth-notes")
        family = int(rng.integers(NUM_NSYNTH_FAMILIES))
        programs = assignable_programs(family)
        program = int(programs[int(rng.integers(len(programs)))])
        low, high = FAMILY_PITCH_RANGES[FAMILY_NAMES[family]]
        pitch = int(rng.integers(max(low, MIN_MIDI_PITCH), min(high, MAX_MIDI_PITCH) + 1))
        velocity = int(NSYNTH_VELOCITIES[int(rng.integers(len(NSYNTH_VELOCITIES)))])
        if (program, pitch, velocity) in seen:
            continue
        seen.add((program, pitch, velocity))
        instrument_str = f"{FAMILY_NAMES[family]}_{stem}_{program:03d}"
        notes.append(NoteSpec(family, program, pitch, velocity, instrument_str))
    return notes


def render_shard(
    shard: tuple[int, tuple[NoteSpec, ...]],
    output_dir: str,
    num_shards: int,
    soundfont: str,
    sample_rate_hz: int,
    settings: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """Renders one shard of notes and writes it as an NSynth TFRecord; yields the note count
    (and :class:`~polyamp.data.beam_runner.Skipped` messages for silent notes)."""
    from polyamp.data.beam_runner import Skipped
    from polyamp.data.nsynth_io import (
        HELD_S,
        NOTE_LENGTH_S,
        make_nsynth_note,
        nsynth_note_str,
        write_nsynth_tfrecord,
    )
    from polyamp.synth.render import SoundFontRenderer

    index, specs = shard
    notes = []
    with SoundFontRenderer(soundfont, sample_rate_hz=sample_rate_hz, **(settings or {})) as renderer:
        for spec in specs:
            samples = renderer.render_note(spec.program, spec.pitch, spec.velocity, HELD_S, NOTE_LENGTH_S)
            peak = float(abs(samples).max()) if samples.size else 0.0
            if peak < SILENT_PEAK:
                yield Skipped(f"NSynth note {spec.describe()}: the SoundFont renders silence; dropped")
                continue
            if peak > 0.99:
                samples = samples * (0.99 / peak)
            source = 2 if spec.family == 9 else 0  # synth_lead: synthetic; sampled instruments: acoustic
            note_str = nsynth_note_str(spec.instrument_str, spec.pitch, spec.velocity)
            notes.append(
                make_nsynth_note(
                    note_str,
                    spec.pitch,
                    spec.velocity,
                    spec.family,
                    source,
                    samples.astype("float32"),
                    instrument_str=spec.instrument_str,
                )
            )
    path = pathlib.Path(output_dir) / f"nsynth-train.tfrecord-{index:05d}-of-{num_shards:05d}"
    write_nsynth_tfrecord(path, notes, overwrite=True)
    yield len(notes)


def render_nsynth_set(
    output_dir: str | os.PathLike[str],
    soundfont: str,
    num_notes: int,
    seed: int,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    pipeline_args: Sequence[str] | None = None,
    overwrite: bool = False,
    settings: dict[str, Any] | None = None,
) -> tuple[int, list[str]]:
    """Renders ``num_notes`` single notes into ``output_dir``; returns (notes written, skipped messages)."""
    import json
    import tempfile

    from polyamp.data import beam_runner

    output_dir = pathlib.Path(output_dir)
    if output_dir.is_dir() and any(output_dir.glob("nsynth-*.tfrecord*")) and not overwrite:
        raise OutputExistsError(f"{output_dir} already holds NSynth shards (use --overwrite to replace them)")
    output_dir.mkdir(parents=True, exist_ok=True)
    specs = plan_notes(num_notes, seed, pathlib.Path(soundfont).stem)
    shards = [
        (index, tuple(specs[start : start + NOTES_PER_SHARD]))
        for index, start in enumerate(range(0, len(specs), NOTES_PER_SHARD))
    ]
    num_shards = len(shards)

    def render(shard: tuple[int, tuple[NoteSpec, ...]]) -> Iterator[Any]:
        yield from render_shard(shard, str(output_dir), num_shards, soundfont, sample_rate_hz, settings)

    with tempfile.TemporaryDirectory(prefix="polyamp-nsynth-") as report_dir:
        counts_file = os.path.join(report_dir, "counts.json")
        skipped_file = os.path.join(report_dir, "skipped.json")

        def build(pipeline: Any) -> None:
            import apache_beam as beam

            outputs = (
                pipeline
                | "note shards" >> beam.Create(shards, reshuffle=False)
                | "spread shards" >> beam.Reshuffle()
                | "render notes"
                >> beam.ParDo(beam_runner.make_skip_bad_items(render)).with_outputs(
                    beam_runner.SKIPPED_TAG, main="counts"
                )
            )
            beam_runner.collect_to_file(outputs.counts, counts_file, "note counts")
            beam_runner.collect_to_file(outputs[beam_runner.SKIPPED_TAG], skipped_file, "note skips")

        beam_runner.run_pipeline(build, pipeline_args)
        written = sum(beam_runner.read_collected(counts_file))
        skipped = beam_runner.read_collected(skipped_file)
    (output_dir / "nsynth_notes.json").write_text(
        json.dumps({"seed": seed, "soundfont": pathlib.Path(soundfont).name, "notes": written}, indent=1) + "\n"
    )
    return written, skipped
