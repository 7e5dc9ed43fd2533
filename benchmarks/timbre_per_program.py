"""Timbre accuracy per General MIDI program and per piece: which instruments a Timbre checkpoint gets wrong.

    python benchmarks/timbre_per_program.py MODEL_DIR LOAD_ID EXAMPLES_PATH [--output FILE]

Every pitched note (MIDI pitch 21-108) of every evaluation track is labelled as ``polyamp eval --model-type
timbre`` labels it (:func:`polyamp.timbre_evaluation.label_notes`, notes sorted by onset). Prints one line per
program: program, its family, notes, accuracy, the three most frequent predicted families; then one line per
track: id, accuracy, the programs it holds.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np


def program_table(model_dir: str, load_id: str, examples_path: str) -> list[str]:
    """The report's lines (see the module docstring)."""
    from polyamp.data.datasets import open_dataset
    from polyamp.loading import load_components
    from polyamp.notes.families import FAMILY_NAMES, family_of
    from polyamp.notes.rolls import parse_note_sequence
    from polyamp.timbre_evaluation import label_notes

    components, _ = load_components(model_dir, "timbre", load_id)
    totals: dict[int, list] = collections.defaultdict(lambda: [0, 0, collections.Counter()])
    tracks = []
    for example in open_dataset(examples_path, split="test").examples():
        sequence = parse_note_sequence(example.sequence.SerializeToString())
        rows = sorted(
            (note.pitch, note.start_time, max(note.end_time, note.start_time), note.program)
            for note in sequence.notes
            if not note.is_drum and 21 <= note.pitch <= 108 and family_of(note.program) is not None
        )
        rows.sort(key=lambda row: (row[1], row[0]))
        if not rows:
            continue
        notes = np.asarray(rows, np.float32)
        predicted = label_notes(components, example.samples, notes[:, :3]).argmax(-1)
        programs = notes[:, 3].astype(int)
        families = np.array([family_of(program) for program in programs])
        tracks.append(
            f"{example.example_id} {float((predicted == families).mean()):.3f} {sorted(set(programs.tolist()))}"
        )
        for program, family, guess in zip(programs, families, predicted, strict=True):
            entry = totals[int(program)]
            entry[0] += 1
            entry[1] += int(family == guess)
            entry[2][FAMILY_NAMES[int(guess)]] += 1
    lines = ["program family notes accuracy most-predicted"]
    for program in sorted(totals):
        count, right, guesses = totals[program]
        family = FAMILY_NAMES[family_of(program)]
        lines.append(f"{program} {family} {count} {right / count:.3f} {guesses.most_common(3)}")
    return lines + ["track accuracy programs"] + tracks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("load_id")
    parser.add_argument("examples_path")
    parser.add_argument("--output", type=Path, help="Also write the lines to this file.")
    args = parser.parse_args()
    lines = program_table(args.model_dir, args.load_id, args.examples_path)
    print("\n".join(lines))
    if args.output is not None:
        args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
