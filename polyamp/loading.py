"""Restoring a trained model for evaluation or transcription."""

from __future__ import annotations

import os
from typing import Any

from polyamp.checkpoints import CheckpointRef, operative_config_path, resolve_checkpoint
from polyamp.components import Components, build_components
from polyamp.config import bind_hparams, parse_gin, parse_hparams_json
from polyamp.errors import CheckpointError

INFERENCE_BINDINGS = ("open_dataset.dataset = 'auto'",)
"""Bindings over a checkpoint's saved config when it is loaded for eval or transcription: the run's
training dataset choice (e.g. ``'mixture'``) must not decide how ``--examples-path`` is read; the
user's gin files and params still may."""


def load_components(
    model_dir: str | os.PathLike[str],
    model_type: str = "melodic",
    load_id: str = "*",
    hparams_json: str | None = None,
    gin_files: tuple[str, ...] | list[str] = (),
    gin_params: tuple[str, ...] | list[str] = (),
    load_full: bool | None = None,
) -> tuple[Components, CheckpointRef]:
    """Finds the checkpoint ``load_id`` names, reloads its operative gin config, applies the user's
    gin files, gin params and ``--hparams`` on top, builds the components and restores the weights.

    ``load_full`` (None = auto) chooses between a Full checkpoint and separately trained parts
    (see :mod:`polyamp.full_loading`). For the Full model built from parts the returned reference
    is the Melodic part's checkpoint.
    """
    from polyamp.full_loading import full_checkpoint, full_run_hint, restore_part_from_full

    if model_type == "full":
        return _load_full_components(model_dir, load_id, hparams_json, gin_files, gin_params, load_full)
    if load_full:
        ref = full_checkpoint(model_dir, load_id, model_type)
    else:
        try:
            ref = resolve_checkpoint(model_dir, model_type, load_id)
        except CheckpointError as error:
            raise CheckpointError(f"{error}{full_run_hint(model_dir, model_type, load_id)}") from None
    operative = operative_config_path(ref)
    parse_gin(
        gin_files,
        gin_params,
        operative_config=str(operative) if operative else None,
        base_bindings=INFERENCE_BINDINGS,
    )
    bind_hparams(model_type, parse_hparams_json(model_type, hparams_json))
    components = build_components(model_type=model_type)
    if load_full:
        restore_part_from_full(model_type, components.model, ref)
    else:
        restore_weights(components.model, ref)
    return components, ref


def _load_full_components(
    model_dir: str | os.PathLike[str],
    load_id: str,
    hparams_json: str | None,
    gin_files: tuple[str, ...] | list[str],
    gin_params: tuple[str, ...] | list[str],
    load_full: bool | None,
) -> tuple[Components, CheckpointRef]:
    """The Full model from a Full checkpoint or from its parts' checkpoints (``load_full``)."""
    from polyamp.full_loading import plan_full_start, restore_full_start, start_bindings

    start = plan_full_start(model_dir, load_id, load_full)
    # start_bindings parses (and clears) gin, so it runs before the final parse.
    bindings = start_bindings(start) if start.full is None else []
    operative = operative_config_path(start.full) if start.full is not None else None
    parse_gin(
        gin_files,
        gin_params,
        operative_config=str(operative) if operative else None,
        base_bindings=[*bindings, *INFERENCE_BINDINGS],
    )
    bind_hparams("full", parse_hparams_json("full", hparams_json))
    components = build_components(model_type="full")
    restore_full_start(components.model, start)
    ref = start.full if start.full is not None else start.parts["melodic"]
    return components, ref


def restore_weights(model: Any, ref: CheckpointRef) -> None:
    """Restores ``model``'s weights (only) from ``ref``."""
    import tensorflow as tf

    restore_checkpoint(tf.train.Checkpoint(model=model), ref, expect_partial=True, action="load")


def restore_checkpoint(checkpoint: Any, ref: CheckpointRef, expect_partial: bool, action: str) -> None:
    """Restores a ``tf.train.Checkpoint`` from ``ref``; a mismatch is a CheckpointError, not a traceback."""
    import tensorflow as tf

    try:
        status = checkpoint.restore(ref.prefix)
        if expect_partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"cannot {action} {ref.prefix}: it does not fit the model built from its config "
            f"(architecture hparams changed? use a new --model-id for a new architecture): {first_line}"
        ) from None
