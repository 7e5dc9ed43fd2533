"""Run by tests/test_faults.py, usually inside a private mount namespace where ``FULL`` is a full tmpfs and
``READ_ONLY`` a read-only one: every writer (MIDI, JSON, TFRecord, checkpoint, a training run) must raise a
one-line OutputError and leave no partial file behind.

``python fault_writers.py EXAMPLES FULL READ_ONLY``; ``FULL`` may be ``-`` (not available). Each writer gets
its own folder ``<FULL or READ_ONLY>/<writer>``, which the caller made before filling the disk or making it
read-only. Prints one JSON object: ``{case: {"error": type name or null, "message": str, "left": [files
left in the writer's folder]}}``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (relative paths; empty folders are not listed)."""
    if not folder.exists():
        return []
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir())


def attempt(folder: Path, write: Callable[[Path], Any]) -> dict[str, Any]:
    """Runs ``write(folder)``: what it raised and what it left in ``folder``."""
    try:
        write(folder)
        error, message = None, ""
    except Exception as caught:  # reported to the test, which checks the type
        error, message = type(caught).__name__, str(caught)
    return {"error": error, "message": message, "left": files_under(folder)}


def main() -> None:
    examples, full, read_only = sys.argv[1], sys.argv[2], sys.argv[3]
    from note_seq.protobuf import music_pb2

    from polyamp.audio.decode import encode_wav
    from polyamp.data.tfrecord import make_example, write_tfrecord
    from polyamp.fileio import atomic_write_text
    from polyamp.notes.midi import write_midi

    sequence = music_pb2.NoteSequence()
    sequence.notes.add(pitch=60, velocity=80, start_time=0.0, end_time=0.5)
    record = make_example("x", sequence, encode_wav([0.1] * 16000))

    def checkpoint(folder: Path) -> None:
        import tensorflow as tf

        from polyamp.training import save_checkpoint

        state = tf.train.Checkpoint(weights=tf.Variable(tf.zeros([300_000])))  # 1.2 MB
        save_checkpoint(tf.train.CheckpointManager(state, str(folder), max_to_keep=2), 1)

    def training(folder: Path) -> None:
        from polyamp.training import configure_training, train

        params = ["train.checkpoint_every = 1"]
        configure_training(folder, "melodic", "run", ["melodic/tiny.gin"], params)
        train(examples, folder, model_id="run", num_steps=2, seed=0)

    writers: dict[str, Callable[[Path], Any]] = {
        "midi": lambda folder: write_midi(sequence, folder / "notes.mid"),
        "json": lambda folder: atomic_write_text(folder / "metrics.json", json.dumps({"f1": 0.5}) * 20000),
        "tfrecord": lambda folder: write_tfrecord(folder / "train.tfrecord", [record] * 20),
        "checkpoint": checkpoint,
        "training": training,
    }
    results = {}
    for name, write in writers.items():
        if full != "-":
            results[f"{name} on a full disk"] = attempt(Path(full) / name, write)
        results[f"{name} in a read-only folder"] = attempt(Path(read_only) / name, write)
    print(json.dumps(results), flush=True)
    os._exit(0)  # skip TensorFlow's slow teardown


if __name__ == "__main__":
    main()
