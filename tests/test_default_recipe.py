"""The default model's recipe (gin/recipes/default*.gin) and its driver: the exclusion list equals the
packaged reserved-works list, the gin files bind the data rules, the piano-only strategy, and the
``--tiny`` recipe end to end (render with FluidR3, train both parts, export, transcribe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
BEGIN, END = "# Reserved works (begin):", "# Reserved works (end)."


def recipe_exclusion_list() -> list[str]:
    """The corpus paths in the recipe's comment block (the installed copy of gin/recipes/default.gin)."""
    from polyamp.config import resolve_gin_file

    lines = Path(resolve_gin_file("recipes/default.gin")).read_text(encoding="utf-8").splitlines()
    start, stop = lines.index(BEGIN), lines.index(END)
    return [line.lstrip("#").strip() for line in lines[start + 1 : stop]]


def test_recipe_exclusion_list_is_the_packaged_reserved_list() -> None:
    from polyamp.synth.reserved import is_reserved, reserved_entries

    listed = recipe_exclusion_list()
    assert listed == list(reserved_entries()) and len(listed) >= 20
    assert all(is_reserved(entry) for entry in listed)


def test_recipe_gin_files_bind_the_data_and_model_rules() -> None:
    import gin

    from polyamp.config import parse_gin
    from polyamp.synth.arrange import ArrangeOptions

    try:
        parse_gin(["recipes/default.gin"])
        ensembles = ArrangeOptions()
        assert ensembles.program_strategy == "balanced" and ensembles.parts_range == (2, 5)
        assert ensembles.velocity_jitter > 0 and ensembles.part_velocity_offset > 0 and ensembles.timing_jitter_ms > 0
        parse_gin(["recipes/default_piano.gin"])
        piano = ArrangeOptions()
        assert piano.program_strategy == "piano" and piano.velocity_jitter == ensembles.velocity_jitter
        for part in ("melodic", "timbre"):
            parse_gin([f"recipes/default_{part}.gin"])
            assert gin.query_parameter("build_components.model_type") == part
            assert gin.query_parameter("open_dataset.dataset") == "slakh"
            assert gin.query_parameter("SlakhDataset.submix_probability") == 1.0
    finally:
        parse_gin()


def test_piano_strategy_puts_every_pitched_part_on_one_piano() -> None:
    from polyamp.synth.arrange import PIANO_PROGRAMS, ArrangeOptions, arrange_piece
    from polyamp.synth.piece import NoteEvent, Part, Piece

    notes = tuple(NoteEvent(60 + step, step * 0.5, step * 0.5 + 0.4, 80) for step in range(4))
    parts = (
        Part("violin", 40, False, notes),
        Part("flute", 73, False, notes),
        Part("bass", 32, False, tuple(NoteEvent(n.pitch - 24, n.start_s, n.end_s, 80) for n in notes)),
        Part("drums", 0, True, tuple(NoteEvent(36, n.start_s, n.end_s, 90) for n in notes)),
    )
    chosen = set()
    for seed in range(8):
        arranged = arrange_piece(Piece(f"p{seed}", "test", parts), ArrangeOptions(program_strategy="piano"), seed)
        pitched = {part.program for part in arranged.parts if not part.is_drum}
        assert len(pitched) == 1 and pitched <= set(PIANO_PROGRAMS)
        assert [part.program for part in arranged.parts if part.is_drum] == [0]
        chosen |= pitched
    assert chosen == set(PIANO_PROGRAMS)  # both pianos are used across pieces


@pytest.mark.skipif(not FLUIDR3.is_file(), reason="FluidR3 GM missing: apt-get install fluid-soundfont-gm")
def test_tiny_recipe_renders_trains_exports_and_transcribes(polyamp_command, clip: Path, tmp_path: Path) -> None:
    import yaml

    from polyamp.pretrained import PRETRAINED_ENV, pretrained_dir, verify_pretrained

    pytest.importorskip("music21")
    shipped_manifest = pretrained_dir() / "manifest.json"
    shipped_before = shipped_manifest.read_bytes() if shipped_manifest.exists() else None
    work = tmp_path / "work"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, str(REPO / "scripts" / "train_default_models.py"), "--tiny", "--work-dir", str(work)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    for render, strategy in (("ensembles", "balanced"), ("piano", "piano")):
        manifest = json.loads((work / "data" / render / "synth_manifest.json").read_text())
        assert manifest["soundfont"] == "FluidR3_GM.sf2"  # the recipe trains on FluidR3 only
        assert manifest["tracks"] and {track["split"] for track in manifest["tracks"]} == {"train"}
        if strategy == "piano":
            for track in (work / "data" / render / "train").iterdir():
                stems = yaml.safe_load((track / "metadata.yaml").read_text())["stems"].values()
                assert {stem["program_num"] for stem in stems if not stem.get("is_drum")} <= {0, 1}
    exported = work / "pretrained"
    model = verify_pretrained(exported)
    assert model.steps() == {"melodic": 20, "timbre": 20}
    assert model.manifest["name"] == "polyamp-default-tiny"
    timings = json.loads((work / "timings.json").read_text())
    print(f"tiny recipe timings (s): {timings}")

    out = tmp_path / "midi"
    transcribe = polyamp_command + ["transcribe", str(clip), "--output-dir", str(out)]
    done = subprocess.run(
        transcribe, capture_output=True, text=True, timeout=300, env=dict(env, **{PRETRAINED_ENV: str(exported)})
    )
    assert done.returncode == 0, done.stderr
    assert "polyamp-default-tiny" in done.stderr
    import pretty_midi

    pretty_midi.PrettyMIDI(str(out / f"{clip.stem}.polyamp.mid"))  # a readable multi-track MIDI file
    after = shipped_manifest.read_bytes() if shipped_manifest.exists() else None
    assert after == shipped_before  # the shipped model is replaced only with --install
