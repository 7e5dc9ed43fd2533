"""The training workflow: stream batches, step the optimizer, checkpoint atomically, resume.

``train`` is gin-configurable; the CLI and the library call it the same way. ``num_steps`` is
the total step count of the run: a restarted run resumes from its latest checkpoint and stops
at the same total.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gin

from polyamp.checkpoints import (
    latest_checkpoint,
    remove_partial_checkpoint,
    remove_partial_checkpoints,
    resolve_checkpoint,
    run_dir,
)
from polyamp.components import build_components
from polyamp.config import hparams_to_dict, operative_config_str
from polyamp.distribution import CheckpointFolder, cluster_size, get_strategy, is_chief, shard_source
from polyamp.fileio import atomic_write_text, output_error

ProgressCallback = Callable[[int, int, dict[str, float], float], None]


@dataclasses.dataclass
class TrainResult:
    """Where the run lives and where it stopped."""

    run_dir: Path
    first_step: int
    last_step: int
    last_losses: dict[str, float]
    interrupted: bool = False
    started_from: list[str] = dataclasses.field(default_factory=list)
    """Checkpoints a new run started from (``--load-id``), one description each."""


@gin.configurable(denylist=["examples_path", "model_dir", "model_type", "model_id", "load_id", "load_full", "progress"])
def train(
    examples_path: str,
    model_dir: str | os.PathLike[str],
    model_type: str = "melodic",
    model_id: str = "default",
    load_id: str | None = None,
    num_steps: int = 10000,
    checkpoint_every: int = 200,
    keep_checkpoints: int = 3,
    summary_every: int = 10,
    strategy: str = "default",
    scale_learning_rate_with_replicas: bool = False,
    seed: int | None = None,
    max_seconds: float | None = None,
    progress: ProgressCallback | None = None,
    load_full: bool | None = None,
) -> TrainResult:
    """Trains ``model_type`` on ``examples_path`` into ``<model_dir>/<model_type>/<model_id>``.

    Resumes from that folder's latest checkpoint if there is one; otherwise, if ``load_id`` is
    given, starts from the weights of that id's latest checkpoint (``*`` = newest of any id).
    Saves every ``checkpoint_every`` steps, at the end, and on SIGINT/SIGTERM. With
    ``max_seconds``, stops (and saves) once that much wall time has passed since the start of the call.
    ``load_full`` (None = auto) says whether a new run starts from a Full checkpoint or, for the Full
    model, from separately trained parts (:mod:`polyamp.full_loading`).

    ``strategy`` is a :mod:`polyamp.distribution` strategy name. The model's ``batch_size`` hparam is
    the batch of one replica, so a step sees ``batch_size`` x replicas examples;
    ``scale_learning_rate_with_replicas`` multiplies the learning rate by the replica count (linear
    scaling rule). In a multi-worker cluster every worker runs this function with the same arguments;
    each reads its own shard of the data, only the chief writes into the run folder, and a stop
    (signal or ``max_seconds``) on any worker stops every worker after the same step.
    """
    # The strategy comes first: multi_worker configures TensorFlow's collective ops, which must be
    # done before the process runs its first TensorFlow op (opening the dataset runs some).
    distribution = get_strategy(strategy)

    import keras
    import tensorflow as tf

    from polyamp.data.datasets import open_dataset
    from polyamp.loading import restore_checkpoint, restore_weights
    from polyamp.tasks import get_task

    call_started = time.perf_counter()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    directory = run_dir(model_dir, model_type, model_id)
    task = get_task(model_type)
    source = open_dataset(examples_path, split="train")
    replicas = distribution.num_replicas_in_sync
    chief = is_chief(distribution)
    in_cluster = cluster_size(distribution) > 1
    with distribution.scope():
        components = build_components(model_type=model_type)
        hparams, model = components.hparams, components.model
        settings = task.optimizer_settings(hparams)
        learning_rate = settings.learning_rate * (replicas if scale_learning_rate_with_replicas else 1)
        schedule = keras.optimizers.schedules.InverseTimeDecay(
            learning_rate, decay_steps=1, decay_rate=settings.decay_rate
        )
        optimizer = keras.optimizers.Adam(learning_rate=schedule, clipnorm=settings.clip_norm)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = tf.train.Checkpoint(step=step, model=model, optimizer=optimizer)

    if chief:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise output_error(directory, error, "run folder") from error
        remove_partial_checkpoints(directory)  # what a killed save left behind
    own = latest_checkpoint(directory)
    started_from: list[str] = []
    if own is not None:
        restore_checkpoint(checkpoint, own, expect_partial=False, action="resume from")
    elif model_type == "full":
        from polyamp.full_loading import plan_full_start, restore_full_start

        start = plan_full_start(model_dir, load_id, load_full, training=True)
        restore_full_start(model, start)
        started_from = start.describe()
    elif load_id and load_full:
        from polyamp.full_loading import full_checkpoint, restore_part_from_full

        ref = full_checkpoint(model_dir, load_id, model_type)
        restore_part_from_full(model_type, model, ref)
        started_from = [f"{model_type} part of the full model {ref.prefix}"]
    elif load_id:
        ref = resolve_checkpoint(model_dir, model_type, load_id)
        restore_weights(model, ref)
        started_from = [f"{model_type} model {ref.prefix}"]
    first_step = int(step.numpy())

    def dataset_fn(context: Any) -> Any:
        # Each input pipeline (one per worker) builds its own tf.data pipeline from its own shard:
        # no auto-shard rewrite of a graph full of tf.numpy_function decoders, and no worker decodes
        # examples only to drop them (see polyamp.distribution.shard_source).
        part, _ = shard_source(source, context.num_input_pipelines, context.input_pipeline_id)
        pipeline_seed = None if seed is None else seed + context.input_pipeline_id
        return task.batches(part, components, pipeline_seed)

    batches = distribution.distribute_datasets_from_function(dataset_fn)

    def replica_step(features: Any, labels: Any, stop: Any) -> tuple[dict[str, Any], Any]:
        with tf.GradientTape() as tape:
            losses = task.losses(model, features, labels, hparams)
            scaled = losses["total"] / replicas
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=False))
        # tf.identity places the vote on this replica's device (all_reduce needs one).
        votes = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(stop))
        return losses, votes

    @tf.function
    def train_step(features: Any, labels: Any, stop: Any) -> tuple[dict[str, Any], Any]:
        per_replica, votes = distribution.run(replica_step, args=(features, labels, stop))
        losses = {
            name: distribution.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for name, value in per_replica.items()
        }
        return losses, distribution.experimental_local_results(votes)[0]

    with contextlib.ExitStack() as cleanup:
        folder = cleanup.enter_context(CheckpointFolder(directory, distribution))
        manager = tf.train.CheckpointManager(checkpoint, folder.path, max_to_keep=keep_checkpoints)
        if chief:
            atomic_write_text(directory / "hparams.json", json.dumps(hparams_to_dict(hparams), indent=2) + "\n")
            writer = tf.summary.create_file_writer(str(directory / "train"))
            cleanup.callback(writer.flush)
        else:
            writer = tf.summary.create_noop_writer()

        def save() -> None:
            number = int(step.numpy())
            save_checkpoint(manager, number)
            if chief:
                atomic_write_text(directory / f"operative_config-{number}.gin", operative_config_str())
                _prune_operative_configs(directory)

        stop_requested = {"flag": False}

        def request_stop(signum: int, _frame: Any) -> None:
            stop_requested["flag"] = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                cleanup.callback(signal.signal, signum, signal.signal(signum, request_stop))
            except ValueError:  # not in the main thread
                pass

        losses_now: dict[str, float] = {}
        stopped_early = False
        started = time.perf_counter()
        iterator = iter(batches)
        while int(step.numpy()) < num_steps:
            out_of_time = max_seconds is not None and time.perf_counter() - call_started > max_seconds
            wants_stop = stop_requested["flag"] or out_of_time
            if wants_stop and not in_cluster:
                stopped_early = stop_requested["flag"]
                break
            features, labels = _next_batch(iterator)
            # In a cluster the workers vote in the step's all-reduce, so all of them stop after the
            # same step (a worker that stopped alone would leave the others waiting for it forever).
            losses, votes = train_step(features, labels, tf.constant(1.0 if wants_stop else 0.0))
            step.assign_add(1)
            current = int(step.numpy())
            losses_now = {name: float(value) for name, value in losses.items()}
            if chief and (current % summary_every == 0 or current == num_steps):
                with writer.as_default(step=current):
                    for name, value in losses_now.items():
                        tf.summary.scalar(f"loss/{name}", value)
                    tf.summary.scalar("learning_rate", float(schedule(current)))
            if current % checkpoint_every == 0:
                save()
            if progress is not None:
                rate = (current - first_step) / max(time.perf_counter() - started, 1e-9)
                progress(current, num_steps, losses_now, rate)
            if float(votes) > 0:
                stopped_early = stop_requested["flag"] or not out_of_time
                break
        if int(step.numpy()) > first_step or own is None:
            if manager.latest_checkpoint is None or _step_of_prefix(manager.latest_checkpoint) != int(step.numpy()):
                save()
    return TrainResult(directory, first_step, int(step.numpy()), losses_now, stopped_early, started_from)


def _next_batch(iterator: Any) -> Any:
    """The next training batch; a dataset that ends or holds a record that does not decode (the input
    pipeline's ops fail) is a DatasetError rather than a TensorFlow traceback."""
    import tensorflow as tf

    from polyamp.data.tfrecord import _one_line
    from polyamp.errors import DatasetError

    try:
        return next(iterator)
    except StopIteration:
        raise DatasetError("the training data ran out: the dataset yields no usable examples") from None
    except tf.errors.OpError as error:
        raise DatasetError(f"the training data cannot be read: {_one_line(error.message)}") from None


def save_checkpoint(manager: Any, number: int) -> str:
    """Saves ``manager``'s checkpoint as ``ckpt-<number>``; returns its prefix.

    TensorFlow writes the data and index under temporary names and renames them, and rewrites the
    ``checkpoint`` state file last, so a kill never leaves a listed partial checkpoint. A failed
    save (full disk, read-only folder) removes what it wrote and raises OutputError.
    """
    import tensorflow as tf

    try:
        return manager.save(checkpoint_number=number)
    except (tf.errors.OpError, OSError) as error:
        remove_partial_checkpoint(manager.directory, number)
        raise output_error(os.path.join(manager.directory, f"ckpt-{number}"), error, "checkpoint") from error


def _step_of_prefix(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[-1])


def _prune_operative_configs(directory: Path) -> None:
    """Keeps operative configs only for checkpoints that still exist."""
    for config in directory.glob("operative_config-*.gin"):
        step = config.stem.rsplit("-", 1)[-1]
        if not (directory / f"ckpt-{step}.index").exists():
            try:
                os.unlink(config)
            except FileNotFoundError:
                pass


DEFAULT_GIN_FILES = {"melodic": ("melodic/small.gin",), "timbre": ("timbre/small.gin",), "full": ("full/small.gin",)}


def configure_training(
    model_dir: str | os.PathLike[str],
    model_type: str,
    model_id: str,
    gin_files: list[str] | tuple[str, ...] = (),
    gin_params: list[str] | tuple[str, ...] = (),
    hparams_json: str | None = None,
    load_id: str | None = None,
    load_full: bool | None = None,
) -> None:
    """Parses gin for a training run: a resumed run's saved operative config (or the model type's
    default preset when starting fresh without ``--gin-file``), then the user's files, params and hparams.

    A new Full run that starts from checkpoints (``load_id`` / ``load_full``) takes the hparams they
    were trained with (after the preset, before the user's files), so their weights fit.
    """
    from polyamp.checkpoints import operative_config_path
    from polyamp.config import bind_hparams, parse_gin, parse_hparams_json

    existing = latest_checkpoint(run_dir(model_dir, model_type, model_id))
    operative = operative_config_path(existing) if existing is not None else None
    defaults = () if (gin_files or operative) else DEFAULT_GIN_FILES.get(model_type, ())
    bindings: list[str] = []
    if model_type == "full" and existing is None:
        from polyamp.full_loading import plan_full_start, start_bindings

        bindings = start_bindings(plan_full_start(model_dir, load_id, load_full, training=True))
    parse_gin(
        gin_files,
        gin_params,
        operative_config=str(operative) if operative else None,
        default_files=defaults,
        base_bindings=bindings,
    )
    bind_hparams(model_type, parse_hparams_json(model_type, hparams_json))
