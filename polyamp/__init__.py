"""PolyAMP: polyphonic, multi-instrument audio to MIDI transcription.

The package imports nothing heavy; TensorFlow loads on first use.

>>> import polyamp
>>> polyamp.transcribe("song.flac")  # shipped model: song.polyamp.mid, a track per family  # doctest: +SKIP
>>> model = polyamp.load_model("models", load_id="my-run")                      # doctest: +SKIP
>>> polyamp.transcribe(["a.wav", "b.wav"], model=model, output_dir="midi")      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "transcribe", "train", "evaluate", "prepare_dataset"]


def __getattr__(name: str) -> Any:
    if name in ("load_model", "transcribe"):
        from polyamp import transcription as module

        return getattr(module, name)
    if name == "train":
        from polyamp.training import train

        return train
    if name == "evaluate":
        from polyamp.evaluation import evaluate

        return evaluate
    if name == "prepare_dataset":
        from polyamp.data.prepare import prepare_dataset

        return prepare_dataset
    raise AttributeError(f"module 'polyamp' has no attribute {name!r}")
