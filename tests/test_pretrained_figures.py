"""scripts/pretrained_figures.py: the model card's figures come from eval reports, and nothing is overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pretrained_figures.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_tables_are_built_from_the_reports_and_outputs_are_kept(tmp_path: Path) -> None:
    full = {
        "checkpoint": "models/melodic/a/ckpt-7",
        "num_examples": 3,
        "average": {"note_f1": 0.61234, "note_with_offsets_f1": 0.4, "frame_f1": 0.7},
        "multi_instrument": {
            "pooled": {
                "multi_note_f1": 0.5,
                "multi_note_with_offsets_f1": 0.3,
                "matched_note_family_accuracy": 0.8,
                "leakage_tracks_per_instrument": 3.25,
            }
        },
    }
    timbre = {"checkpoint": "models/timbre/b/ckpt-9", "num_examples": 3, "timbre": {"accuracy": 0.9, "macro_f1": 0.85}}
    (tmp_path / "full.json").write_text(json.dumps(full))
    (tmp_path / "timbre.json").write_text(json.dumps(timbre))
    output = tmp_path / "figures.json"
    args = ["--full", f"Set A={tmp_path / 'full.json'}", "--timbre", f"Set A={tmp_path / 'timbre.json'}"]
    result = _run(*args, "--source", "a test", "--output", str(output))
    assert result.returncode == 0, result.stderr
    built = json.loads(output.read_text())
    assert [table["rows"] for table in built["tables"]] == [
        [["Set A", 3, 0.612, 0.4, 0.7]],
        [["Set A", 3, 0.5, 0.3, 0.8, 3.25]],
        [["Set A", 3, 0.9, 0.85]],
    ]
    assert "models/melodic/a/ckpt-7" in built["source"] and "models/timbre/b/ckpt-9" in built["source"]

    again = _run(*args, "--output", str(output))
    assert again.returncode == 5 and "--overwrite" in again.stderr
    malformed = _run("--full", "no-label", "--output", str(tmp_path / "other.json"))
    assert malformed.returncode != 0 and "LABEL=PATH" in malformed.stderr and "Traceback" not in malformed.stderr
