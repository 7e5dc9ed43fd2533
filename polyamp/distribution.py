"""tf.distribute strategies for training, chosen in gin (``train.strategy``), and what each worker may write.

- ``default``: one device (the first GPU if there is one, else the CPU).
- ``mirrored``: ``tf.distribute.MirroredStrategy``, one replica per local GPU (the CPU when there is none).
- ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines that the standard
  ``TF_CONFIG`` environment variable lists (one process per machine, each with its ``task`` index),
  one replica per local GPU of each; gradients are all-reduced across every replica of every worker.
- ``tpu``: ``tf.distribute.TPUStrategy`` on the TPU that ``get_strategy.tpu`` names: ``'local'`` (the
  default) for the TPU of the Cloud TPU VM the process runs on, a TPU name or ``grpc://`` address, or
  ``''`` for TensorFlow's own discovery (the ``TPU_NAME`` environment variable).

Batches: ``batch_size`` (``MelodicHParams``, ``TimbreHParams``, ``FullHParams``) is the batch of **one
replica**; a step consumes ``batch_size * num_replicas_in_sync`` examples (the global batch).
``train.scale_learning_rate_with_replicas`` multiplies the learning rate by the replica count (the
linear scaling rule of Goyal et al. 2017); it is off by default.

Checkpoints and summaries: every worker takes part in saving (a save may run collective ops), but
only the chief (``strategy.extended.should_checkpoint``) writes into the run folder; the others write
into a temporary folder of their own that is deleted at the end, as the TensorFlow multi-worker guide
prescribes. Every worker restores from the run folder, which must therefore be shared (NFS, a
cluster file system) when the workers are on different machines.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from typing import Any

import gin

from polyamp.errors import ConfigError

logger = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
"""Valid values of ``train.strategy``."""


@gin.configurable
def get_strategy(name: str = "default", tpu: str = "local") -> Any:
    """The ``tf.distribute.Strategy`` called ``name`` (one of :data:`STRATEGIES`).

    ``multi_worker`` must be created before TensorFlow runs its first op in the process (the
    collective ops are configured then), so :func:`polyamp.training.train` creates it first.
    Raises ConfigError for an unknown name, a missing or malformed ``TF_CONFIG``, or no TPU.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        check_tf_config()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as error:
            raise ConfigError(f"cannot start the multi_worker strategy from TF_CONFIG: {_first_line(error)}") from None
    if name == "tpu":
        return _tpu_strategy(tpu)
    raise ConfigError(f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}")


def check_tf_config() -> dict[str, Any]:
    """The parsed ``TF_CONFIG`` of a multi-worker run; ConfigError when it is missing or malformed.

    It must hold ``cluster.worker`` (a list of ``host:port``, optionally a ``chief`` list of one)
    and ``task`` (``{"type": "worker" | "chief", "index": i}``).
    """
    text = os.environ.get("TF_CONFIG", "")
    example = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    if not text.strip():
        raise ConfigError(f"train.strategy = 'multi_worker' needs the TF_CONFIG environment variable, e.g. {example}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error.msg}); expected e.g. {example}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError(f"TF_CONFIG needs a 'cluster' and a 'task' object; expected e.g. {example}")
    task_type, index = task.get("type"), task.get("index")
    members = cluster.get(task_type)
    if not isinstance(members, list) or isinstance(index, bool) or not isinstance(index, int):
        raise ConfigError(f"TF_CONFIG task {task!r} names no entry of its cluster {cluster!r}")
    if not 0 <= index < len(members):
        raise ConfigError(f"TF_CONFIG task index {index} is outside its {len(members)} {task_type!r} entries")
    return config


def _tpu_strategy(tpu: str) -> Any:
    """TPUStrategy on ``tpu`` (``'local'``: this TPU VM; a name or ``grpc://`` address; ``''``: discovery),
    set up as TensorFlow's TPU guide does: resolve, connect (a remote TPU), initialize, build."""
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        where = f"TPU {tpu!r}" if tpu else "TPU (set get_strategy.tpu or TPU_NAME)"
        raise ConfigError(f"train.strategy = 'tpu' found no usable {where}: {_first_line(error)}") from None


def is_chief(strategy: Any) -> bool:
    """True where checkpoints, summaries and the run's JSON/gin files are written (the chief worker).

    Every strategy on one machine has a single writer; in a multi-worker cluster it is the ``chief``
    task, else worker 0.
    """
    return bool(strategy.extended.should_checkpoint)


def cluster_size(strategy: Any) -> int:
    """How many worker processes train together: the chief and workers of ``TF_CONFIG``, else 1."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(kind, [])) for kind in ("chief", "worker")))


def worker_label(strategy: Any) -> str:
    """``"worker 1"``: this process's task in a multi-worker cluster; ``""`` when it trains alone."""
    if cluster_size(strategy) <= 1:
        return ""
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type} {resolver.task_id}"


class CheckpointFolder:
    """Where this worker saves: the run folder on the chief, a private temporary folder elsewhere.

    Use as a context manager: a temporary folder is deleted on exit.
    """

    def __init__(self, run_folder: str | os.PathLike[str], strategy: Any) -> None:
        self.run_folder = str(run_folder)
        self.chief = is_chief(strategy)
        self._temporary = None if self.chief else tempfile.mkdtemp(prefix="polyamp-worker-checkpoints-")
        self.path = self.run_folder if self._temporary is None else self._temporary

    def __enter__(self) -> CheckpointFolder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)


def shard_source(source: Any, num_shards: int, index: int) -> tuple[Any, bool]:
    """The part of ``source`` that input pipeline ``index`` of ``num_shards`` reads, and whether it is a
    real shard.

    A dataset plugin that can split itself has ``shard(num_shards, index)`` returning a plugin over
    every ``num_shards``-th file (TFRecords), piece (folders) or track (Slakh), or None when it has fewer
    than ``num_shards`` of them. Otherwise every pipeline reads the whole dataset in its own random order
    (the caller offsets the seed by ``index``), which for endless streams of random crops and mixes
    gives the workers different examples without any of them decoding data it then drops.
    """
    if num_shards <= 1:
        return source, True
    split = getattr(source, "shard", None)
    part = split(num_shards, index) if callable(split) else None
    if part is None:
        logger.warning(
            "the dataset cannot be split into %d shards (too few files, or a plugin that cannot split); "
            "each worker reads all of it in its own random order",
            num_shards,
        )
        return source, False
    return part, True


def _first_line(error: BaseException) -> str:
    """An error's first line without TensorFlow's ``{{node ...}}`` details, at most 160 characters."""
    text = str(error).strip().splitlines()
    line = re.sub(r"\s*\{\{[^}]*\}\}", "", text[0]) if text else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."
