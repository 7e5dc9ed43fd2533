"""The training workflow: stream batches, step the optimizer, checkpoint atomically, resume.

``train`` is gin-configurable; the CLI and the library call it the same way. ``num_steps`` is
the total step count of the run: a restarted run resumes from its latest checkpoint and stops
at the same total.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gin

from polyamp.checkpoints import latest_checkpoint, resolve_checkpoint, run_dir
from polyamp.components import build_components
from polyamp.config import hparams_to_dict, operative_config_str
from polyamp.fileio import atomic_write_text

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


@gin.configurable
def get_strategy(name: str = "default") -> Any:
    """The tf.distribute strategy: ``default`` (one device) or ``mirrored`` (all local GPUs/CPUs)."""
    import tensorflow as tf

    from polyamp.errors import ConfigError

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}; valid strategies: default, mirrored")


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
    """
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
    distribution = get_strategy(strategy)
    with distribution.scope():
        components = build_components(model_type=model_type)
        hparams, model = components.hparams, components.model
        settings = task.optimizer_settings(hparams)
        schedule = keras.optimizers.schedules.InverseTimeDecay(
            settings.learning_rate, decay_steps=1, decay_rate=settings.decay_rate
        )
        optimizer = keras.optimizers.Adam(learning_rate=schedule, clipnorm=settings.clip_norm)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = tf.train.Checkpoint(step=step, model=model, optimizer=optimizer)

    directory.mkdir(parents=True, exist_ok=True)
    manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=keep_checkpoints)
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

    batches = distribution.experimental_distribute_dataset(task.batches(source, components, seed))
    replicas = distribution.num_replicas_in_sync

    def replica_step(features: Any, labels: Any) -> dict[str, Any]:
        with tf.GradientTape() as tape:
            losses = task.losses(model, features, labels, hparams)
            scaled = losses["total"] / replicas
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=False))
        return losses

    @tf.function
    def train_step(features: Any, labels: Any) -> dict[str, Any]:
        per_replica = distribution.run(replica_step, args=(features, labels))
        return {
            name: distribution.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for name, value in per_replica.items()
        }

    writer = tf.summary.create_file_writer(str(directory / "train"))
    atomic_write_text(directory / "hparams.json", json.dumps(hparams_to_dict(hparams), indent=2) + "\n")

    def save() -> None:
        number = int(step.numpy())
        manager.save(checkpoint_number=number)
        atomic_write_text(directory / f"operative_config-{number}.gin", operative_config_str())
        _prune_operative_configs(directory)

    stop_requested = {"flag": False}

    def request_stop(signum: int, _frame: Any) -> None:
        stop_requested["flag"] = True

    previous_handlers = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous_handlers[signum] = signal.signal(signum, request_stop)
        except ValueError:  # not in the main thread
            pass

    losses_now: dict[str, float] = {}
    started = time.perf_counter()
    try:
        iterator = iter(batches)
        while int(step.numpy()) < num_steps and not stop_requested["flag"]:
            if max_seconds is not None and time.perf_counter() - call_started > max_seconds:
                break
            features, labels = next(iterator)
            losses = train_step(features, labels)
            step.assign_add(1)
            current = int(step.numpy())
            losses_now = {name: float(value) for name, value in losses.items()}
            if current % summary_every == 0 or current == num_steps:
                with writer.as_default(step=current):
                    for name, value in losses_now.items():
                        tf.summary.scalar(f"loss/{name}", value)
                    tf.summary.scalar("learning_rate", float(schedule(current)))
            if current % checkpoint_every == 0:
                save()
            if progress is not None:
                rate = (current - first_step) / max(time.perf_counter() - started, 1e-9)
                progress(current, num_steps, losses_now, rate)
        if int(step.numpy()) > first_step or own is None:
            if manager.latest_checkpoint is None or _step_of_prefix(manager.latest_checkpoint) != int(step.numpy()):
                save()
    finally:
        writer.flush()
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    return TrainResult(directory, first_step, int(step.numpy()), losses_now, stop_requested["flag"], started_from)


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
