"""Restoring a trained model for evaluation or transcription."""

from __future__ import annotations

import os
from typing import Any

from polyamp.checkpoints import CheckpointRef, operative_config_path, resolve_checkpoint
from polyamp.components import Components, build_components
from polyamp.config import bind_hparams, parse_gin, parse_hparams_json
from polyamp.errors import CheckpointError


def load_components(
    model_dir: str | os.PathLike[str],
    model_type: str = "melodic",
    load_id: str = "*",
    hparams_json: str | None = None,
    gin_files: tuple[str, ...] | list[str] = (),
    gin_params: tuple[str, ...] | list[str] = (),
) -> tuple[Components, CheckpointRef]:
    """Finds the checkpoint ``load_id`` names, reloads its operative gin config, applies the user's
    gin files, gin params and ``--hparams`` on top, builds the components and restores the weights."""
    ref = resolve_checkpoint(model_dir, model_type, load_id)
    operative = operative_config_path(ref)
    parse_gin(gin_files, gin_params, operative_config=str(operative) if operative else None)
    bind_hparams(model_type, parse_hparams_json(model_type, hparams_json))
    components = build_components(model_type=model_type)
    restore_weights(components.model, ref)
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
