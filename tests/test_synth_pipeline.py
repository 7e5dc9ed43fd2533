"""End to end: MIDI -> `polyamp synth` (FluidSynth, real SoundFont) -> Slakh/NSynth readers -> prepare -> training.

Renders a few seconds of real audio with the TimGM6mb SoundFont (Debian timgm6mb-soundfont,
installed by CI) and checks the labels read back through the Slakh and NSynth readers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile

from polyamp.notes.families import DEFAULT_PROGRAMS, FAMILY_NAMES, family_of

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
FAST_BEAM = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
SR = 16000

pytestmark = pytest.mark.skipif(not SOUNDFONT.exists(), reason="needs Debian's timgm6mb-soundfont (CI installs it)")

# (program, is_drum, pitches) of each part; notes every 0.45 s from 0.25 s, 0.3 s long.
PARTS = [
    (0, False, (60, 64, 67, 72)),
    (33, False, (36, 43, 41, 38)),
    (73, False, (79, 81, 84, 83)),
    (0, True, (36, 38)),
]


def _write_piece(path: Path, shift_s: float) -> None:
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for program, is_drum, pitches in PARTS:
        instrument = pretty_midi.Instrument(program=program, is_drum=is_drum)
        for index in range(6):
            start = 0.25 + shift_s + 0.45 * index
            instrument.notes.append(pretty_midi.Note(90, pitches[index % len(pitches)], start, start + 0.3))
        midi.instruments.append(instrument)
    midi.write(str(path))


def _exact_options():  # no humanising: rendered notes must equal the written MIDI
    from polyamp.synth.arrange import ArrangeOptions

    return ArrangeOptions(
        program_strategy="keep",
        velocity_jitter=0.0,
        part_velocity_offset=0.0,
        timing_jitter_ms=0.0,
        tempo_scale=(1.0, 1.0),
        gain_db_range=(0.0, 0.0),
    )


@pytest.fixture(scope="module")
def midi_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("midi")
    _write_piece(folder / "first.mid", 0.0)
    _write_piece(folder / "second.mid", 0.1234)
    (folder / "broken.mid").write_bytes(b"MThd this is not midi")
    return folder


@pytest.fixture(scope="module")
def rendered(midi_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    from polyamp.synth.pipeline import synthesize_dataset

    output = tmp_path_factory.mktemp("synth") / "out"
    report = synthesize_dataset(
        output,
        SOUNDFONT,
        midi_dir=midi_folder,
        seed=7,
        validation_fraction=0.0,
        test_fraction=0.0,
        nsynth_notes=12,
        arrange_options=_exact_options(),
        pipeline_args=FAST_BEAM,
    )
    return output, report


def test_broken_midi_is_skipped_and_the_rest_rendered(rendered, midi_folder: Path) -> None:
    output, report = rendered
    assert len(report.tracks) == 2
    assert len(report.skipped) == 1 and "broken.mid" in report.skipped[0]
    assert sorted(path.name for path in (output / "train").iterdir()) == ["Track00001", "Track00002"]


def test_slakh_reader_gives_the_written_notes_programs_and_families(rendered, midi_folder: Path) -> None:
    from polyamp.data.slakh import SlakhDataset

    output, _ = rendered
    import yaml

    dataset = SlakhDataset(str(output), split="train")
    examples = list(dataset.examples())
    assert len(examples) == 2
    for example in examples:
        assert example.samples.dtype == np.float32 and example.samples.ndim == 1
        assert np.abs(example.samples).max() > 0.05  # real, audible audio
        metadata = yaml.safe_load((output / example.example_id / "metadata.yaml").read_text())
        reference = pretty_midi.PrettyMIDI(str(metadata["source"]))
        expected = sorted(
            (round(note.start, 3), note.pitch, instrument.program, instrument.is_drum)
            for instrument in reference.instruments
            for note in instrument.notes
        )
        got = sorted(
            (round(note.start_time, 3), note.pitch, note.program, note.is_drum) for note in example.sequence.notes
        )
        assert len(got) == len(expected)
        for (got_start, *got_rest), (want_start, *want_rest) in zip(got, expected, strict=True):
            assert got_start == pytest.approx(want_start, abs=1.5e-3)
            assert got_rest == want_rest
        families = {family_of(note.program, note.is_drum) for note in example.sequence.notes}
        assert families == {
            FAMILY_NAMES.index("keyboard"),
            FAMILY_NAMES.index("bass"),
            FAMILY_NAMES.index("flute"),
            None,
        }


def test_rendered_onsets_are_where_the_midi_says(rendered) -> None:
    """The keyboard stem starts sounding at its first note's written start (ground truth is exact)."""
    import yaml

    output, _ = rendered
    for track in sorted((output / "train").iterdir()):
        metadata = yaml.safe_load((track / "metadata.yaml").read_text())
        piano = next(
            stem for stem, entry in metadata["stems"].items() if entry["program_num"] == 0 and not entry["is_drum"]
        )
        samples, rate = soundfile.read(track / "stems" / f"{piano}.flac", dtype="float32")
        assert rate == SR
        notes = pretty_midi.PrettyMIDI(str(track / "MIDI" / f"{piano}.mid")).instruments[0].notes
        written = min(note.start for note in notes)
        heard = np.flatnonzero(np.abs(samples) > 1e-3)[0] / SR
        assert heard == pytest.approx(written, abs=0.004)


def test_same_seed_gives_byte_identical_files(rendered, midi_folder: Path, tmp_path: Path) -> None:
    from polyamp.synth.pipeline import synthesize_dataset

    first, _ = rendered
    second = tmp_path / "again"
    synthesize_dataset(
        second,
        SOUNDFONT,
        midi_dir=midi_folder,
        seed=7,
        validation_fraction=0.0,
        test_fraction=0.0,
        nsynth_notes=12,
        arrange_options=_exact_options(),
    )  # the default runner this time: worker processes
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_nsynth_reader_gives_single_notes_with_their_family(rendered) -> None:
    from polyamp.data.nsynth import NSynthMixDataset
    from polyamp.data.nsynth_io import open_nsynth

    output, report = rendered
    notes = list(open_nsynth(str(output / "nsynth")))
    assert len(notes) == report.nsynth_notes >= 10
    for note in notes:
        assert note.samples.shape == (64000,)
        assert np.abs(note.samples).max() > 1e-3
        program = int(note.instrument_str.rsplit("_", 1)[1])
        assert family_of(program) == note.instrument_family
        assert note.instrument_str.startswith(FAMILY_NAMES[note.instrument_family])
    mixes = NSynthMixDataset(str(output / "nsynth"), notes_per_mix=4, num_eval_mixes=2)
    for mix in mixes.examples():
        assert {note.program for note in mix.sequence.notes} <= set(DEFAULT_PROGRAMS)


def test_prepare_turns_synth_output_into_tfrecords_that_training_reads(rendered, tmp_path: Path) -> None:
    from polyamp.audio.frontends import CQTFrontend
    from polyamp.config import MelodicHParams
    from polyamp.data.datasets import open_dataset
    from polyamp.data.pipeline import training_batches
    from polyamp.data.prepare import prepare_dataset
    from polyamp.data.tfrecord import iter_examples

    output, _ = rendered
    report = prepare_dataset(output, tmp_path / "records", min_chunk_s=1.0, max_chunk_s=2.0, pipeline_args=FAST_BEAM)
    assert report.records["train"] >= 2
    programs = {
        note.program
        for record in iter_examples([str(p) for p in report.written["train"]])
        for note in record["sequence"].notes
    }
    assert programs == {0, 33, 73}
    source = open_dataset(",".join(str(path) for path in report.written["train"]), split="train")
    hparams = MelodicHParams(batch_size=2, truncated_length_secs=1.0)
    spec, labels = next(iter(training_batches(source, CQTFrontend(), hparams, seed=0)))
    assert spec.shape[0] == 2 and labels["frames"].shape[-1] == 88
    assert float(labels["frames"].numpy().sum()) > 0


def test_bad_soundfont_is_one_clear_line(tmp_path: Path, midi_folder: Path, polyamp_command: list[str]) -> None:
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00not a soundfont")
    result = subprocess.run(
        [*polyamp_command, "synth", str(tmp_path / "out"), "--soundfont", str(fake), "--midi-dir", str(midi_folder)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "fake.sf2" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_fluidsynth_says_how_to_install_it(
    tmp_path: Path, midi_folder: Path, polyamp_command: list[str]
) -> None:
    import os

    environment = dict(os.environ, POLYAMP_FLUIDSYNTH_LIBRARY=str(tmp_path / "libfluidsynth-missing.so"))
    result = subprocess.run(
        [
            *polyamp_command,
            "synth",
            str(tmp_path / "out"),
            "--soundfont",
            str(SOUNDFONT),
            "--midi-dir",
            str(midi_folder),
        ],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 3
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "FluidSynth is not installed" in lines[0] and "apt-get install fluidsynth" in lines[0]


def test_splits_renders_only_the_held_out_pieces(tmp_path: Path, polyamp_command: list[str]) -> None:
    from polyamp.synth.pipeline import split_of
    from polyamp.synth.sources import midi_piece_id

    folder = tmp_path / "midi"
    folder.mkdir()
    names = [f"piece{index:02d}" for index in range(12)]
    for index, name in enumerate(names):
        _write_piece(folder / f"{name}.mid", 0.01 * index)
    held_out = {name for name in names if split_of(midi_piece_id(f"{name}.mid"), 0.0, 0.5) == "test"}
    assert 0 < len(held_out) < len(names)
    output = tmp_path / "out"
    result = subprocess.run(
        [*polyamp_command, "synth", str(output), "--soundfont", str(SOUNDFONT), "--midi-dir", str(folder)]
        + ["--splits", "test", "--validation-fraction", "0", "--test-fraction", "0.5", "--parts", "1-2"]
        + ["--pipeline-options", ",".join(FAST_BEAM)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert not (output / "train").exists()
    import json

    tracks = json.loads((output / "synth_manifest.json").read_text())["tracks"]
    assert {track["piece_id"] for track in tracks} == held_out
    for track_dir in (output / "test").iterdir():  # 3 pitched parts + drums -> 1-2 pitched parts + drums
        metadata = (track_dir / "metadata.yaml").read_text()
        assert 2 <= metadata.count("is_drum: false") + metadata.count("is_drum: true") <= 3
    bad = subprocess.run(
        [*polyamp_command, "synth", str(tmp_path / "x"), "--soundfont", str(SOUNDFONT), "--midi-dir", str(folder)]
        + ["--splits", "tset"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 3 and "unknown split 'tset'" in bad.stderr and "Traceback" not in bad.stderr


def test_short_loops_render_the_same_pieces_with_other_sustains(rendered, midi_folder: Path, tmp_path: Path) -> None:
    from polyamp.synth.pipeline import synthesize_dataset
    from polyamp.synth.short_loops import ShortLoopOptions

    plain, _ = rendered
    output = tmp_path / "short"
    options = ShortLoopOptions(attack_s=0.02, loop_cycles=1, min_loop_s=0.0)
    synthesize_dataset(
        output,
        SOUNDFONT,
        midi_dir=midi_folder,
        seed=7,
        validation_fraction=0.0,
        test_fraction=0.0,
        arrange_options=_exact_options(),
        pipeline_args=FAST_BEAM,
        short_loops=options,
    )
    manifest = json.loads((output / "synth_manifest.json").read_text())
    assert manifest["soundfont"] == SOUNDFONT.name
    assert manifest["short_loops"] == {"attack_s": 0.02, "loop_cycles": 1, "min_loop_s": 0.0}
    assert sorted(path.name for path in output.iterdir()) == ["synth_manifest.json", "train"]  # copy removed
    mixes = sorted((output / "train").glob("*/mix.flac"))
    assert mixes and len(mixes) == len(sorted((plain / "train").glob("*/mix.flac")))
    for mix in mixes:
        short_audio, _ = soundfile.read(mix)
        plain_audio, _ = soundfile.read(plain / "train" / mix.parent.name / "mix.flac")
        assert short_audio.shape == plain_audio.shape
        assert not np.allclose(short_audio, plain_audio, atol=1e-3)  # same notes, other sustains


def test_short_loops_need_an_sf2(midi_folder: Path, tmp_path: Path) -> None:
    from polyamp.errors import ConfigError
    from polyamp.synth.pipeline import synthesize_dataset
    from polyamp.synth.short_loops import ShortLoopOptions

    sf3 = Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3")
    if not sf3.exists():
        pytest.skip(f"{sf3} is not installed")
    output = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"short loops: .*\.sf2"):
        synthesize_dataset(output, sf3, midi_dir=midi_folder, short_loops=ShortLoopOptions(), pipeline_args=FAST_BEAM)
    assert not output.exists()  # refused before anything is written
