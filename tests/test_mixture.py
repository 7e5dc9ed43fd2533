"""The mixture dataset plugin: weighted sampling over other plugins, and its configuration errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyamp.data.datasets import open_dataset
from polyamp.data.mixture import MixtureDataset
from polyamp.errors import ConfigError


@pytest.fixture(scope="module")
def nsynth_tfrecord(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from polyamp.data.nsynth_io import make_nsynth_note, write_nsynth_tfrecord

    rng = np.random.default_rng(3)
    notes = []
    for index in range(12):
        pitch = int(rng.integers(40, 80))
        time = np.arange(64000) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * time) * np.exp(-time)).astype(np.float32)
        notes.append(
            make_nsynth_note(f"tone_synthetic_{index:03d}-{pitch:03d}-100", pitch, 100, index % 11, 2, samples)
        )
    path = tmp_path_factory.mktemp("nsynth") / "nsynth-train.tfrecord"
    write_nsynth_tfrecord(path, notes)
    return path


def test_mixture_samples_components_by_weight(synthetic_tfrecord: Path, nsynth_tfrecord: Path) -> None:
    mixture = MixtureDataset(
        components=[("tfrecord", str(synthetic_tfrecord), 3.0), ("nsynth", str(nsynth_tfrecord), 1.0)]
    )
    ids = [
        bytes(example["id"].numpy()).decode() for example in mixture.tf_dataset(shuffle_files=True, seed=1).take(200)
    ]
    from_nsynth = sum(1 for example_id in ids if "mix" in example_id or "nsynth" in example_id)
    assert 25 <= from_nsynth <= 75  # expected 50 of 200
    examples = list(mixture.examples())
    assert len(examples) == 6 + mixture.sources[1].num_eval_mixes


def test_open_dataset_mixture_takes_paths_from_components(synthetic_tfrecord: Path) -> None:
    import gin

    with gin.unlock_config():
        gin.bind_parameter("MixtureDataset.components", [("auto", str(synthetic_tfrecord), 1.0)])
    try:
        source = open_dataset("", dataset="mixture")
        assert len(list(source.examples())) == 6
    finally:
        gin.clear_config()


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ([], "MixtureDataset.components"),
        ([("kazoo", "x", 1.0)], "unknown dataset 'kazoo'"),
        ([("tfrecord", "x", 0.0)], "must be > 0"),
        ([("tfrecord", "x")], "must be \\(plugin, examples_path, weight\\)"),
    ],
)
def test_bad_mixtures_are_config_errors(components: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MixtureDataset(components=components)
