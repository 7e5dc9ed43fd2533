"""The ``mixture`` dataset plugin: several datasets in one training run, sampled with weights.

Configured from gin (``gin/datasets/mixture.gin``)::

    open_dataset.dataset = 'mixture'
    MixtureDataset.components = [
        ('tfrecord', '/data/maestro/train.tfrecord-*', 1.0),
        ('slakh', '/data/slakh2100_flac_redux', 2.0),
        ('nsynth', '/data/nsynth-train.tfrecord', 1.0),
    ]

Each component is ``(dataset plugin name, examples path, weight)``; a training example comes
from component i with probability weight_i / sum(weights). Evaluation (``examples()``) walks
the components one after the other.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import gin

from polyamp.errors import ConfigError
from polyamp.registry import DATASETS


@DATASETS.register("mixture")
@gin.configurable
class MixtureDataset:
    """Weighted mixture of other dataset plugins; ``examples_path`` is unused (components carry paths)."""

    def __init__(
        self,
        examples_path: str = "",
        split: str | None = None,
        components: Sequence[tuple[str, str, float]] = (),
    ) -> None:
        if not components:
            raise ConfigError(
                "the mixture dataset needs MixtureDataset.components = [(plugin, examples_path, weight), ...] in gin"
            )
        parsed = []
        for component in components:
            if len(component) != 3:
                raise ConfigError(f"a mixture component must be (plugin, examples_path, weight), got {component!r}")
            name, path, weight = component
            if name != "auto" and name not in DATASETS:
                raise ConfigError(
                    f"unknown dataset {name!r} in the mixture; valid datasets: {', '.join(DATASETS.names())}"
                )
            if name == "mixture":
                raise ConfigError("a mixture cannot contain another mixture")
            if not float(weight) > 0:
                raise ConfigError(f"mixture weight of {name} {path} must be > 0, got {weight}")
            parsed.append((name, str(path), float(weight)))
        self.weights = [weight for _, _, weight in parsed]
        from polyamp.data.datasets import open_dataset

        self.sources = [open_dataset(path, dataset=name, split=split) for name, path, _ in parsed]
        self.names = [f"{name}:{path}" for name, path, _ in parsed]

    def shard(self, num_shards: int, index: int) -> MixtureDataset:
        """The same mixture with each component that can split itself (``shard``) replaced by its part."""
        part = copy.copy(self)
        part.sources = []
        for source in self.sources:
            split = getattr(source, "shard", None)
            part.sources.append((split(num_shards, index) if callable(split) else None) or source)
        return part

    def tf_dataset(self, shuffle_files: bool, seed: int | None = None) -> Any:
        """Endless weighted interleaving of the components' (repeated) example streams."""
        import tensorflow as tf

        def loosen(example: dict[str, Any]) -> dict[str, Any]:
            # Components differ in clip length: give every stream the same [None]-shaped samples.
            return {
                "id": example["id"],
                "sequence": example["sequence"],
                "samples": tf.reshape(example["samples"], tf.stack([tf.size(example["samples"])])),
            }

        streams = []
        for index, source in enumerate(self.sources):
            stream = source.tf_dataset(shuffle_files=shuffle_files, seed=None if seed is None else seed + index)
            streams.append(stream.map(loosen).repeat())
        total = sum(self.weights)
        return tf.data.Dataset.sample_from_datasets(
            streams, weights=[weight / total for weight in self.weights], seed=seed, stop_on_empty_dataset=False
        )

    def examples(self) -> Iterator[Any]:
        """Every component's evaluation examples, component after component."""
        for source in self.sources:
            yield from source.examples()
