"""Where a Full model's weights come from (``--load-full``), and loading a part from a Full run.

The four cases (2020 ``load_weights``, with ``--load-id`` honoured this time):

* Full model, load-full true: the Full checkpoint ``<model_dir>/full/<load_id>``.
* Full model, load-full false: the Melodic part from ``<model_dir>/melodic/<load_id>`` and the
  Timbre part from ``<model_dir>/timbre/<load_id>`` (``*`` = newest of any id), each rebuilt with
  the hparams its own run saved in its operative config.
* Full model, load-full unset (auto): true when the Full checkpoint exists, else false.
* Melodic or Timbre model, load-full true: that part of the Full checkpoint ``full/<load_id>``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from polyamp.checkpoints import ANY_ID, CheckpointRef, operative_config_path, resolve_checkpoint
from polyamp.errors import CheckpointError

PARTS = ("melodic", "timbre")


@dataclasses.dataclass
class FullStart:
    """Weights for a Full model: a whole Full checkpoint, or checkpoints of its parts (possibly none)."""

    full: CheckpointRef | None = None
    parts: dict[str, CheckpointRef] = dataclasses.field(default_factory=dict)

    def describe(self) -> list[str]:
        """One entry per checkpoint loaded, e.g. ``melodic part models/melodic/a/ckpt-20``."""
        if self.full is not None:
            return [f"full model {self.full.prefix}"]
        return [f"{part} part {ref.prefix}" for part, ref in self.parts.items()]


def parse_load_full(value: Any) -> bool | None:
    """``--load-full`` value: True/False, or None (auto) for None; accepts true/false/yes/no/1/0 strings."""
    from polyamp.errors import ConfigError

    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "t", "y"):
        return True
    if text in ("false", "no", "0", "f", "n"):
        return False
    if text in ("auto", "none", ""):
        return None
    raise ConfigError(f"--load-full must be true or false, got {value!r}")


def _try_resolve(model_dir: str | os.PathLike[str], model_type: str, load_id: str) -> CheckpointRef | None:
    try:
        return resolve_checkpoint(model_dir, model_type, load_id)
    except CheckpointError:
        return None


def full_checkpoint(model_dir: str | os.PathLike[str], load_id: str | None, model_type: str = "full") -> CheckpointRef:
    """The Full checkpoint ``load_id`` names (``*`` / None = newest); CheckpointError with what to do."""
    try:
        return resolve_checkpoint(model_dir, "full", load_id or ANY_ID)
    except CheckpointError as error:
        other = (
            "pass --no-load-full to combine separately trained melodic and timbre parts"
            if model_type == "full"
            else f"drop --load-full to load a {model_type} run"
        )
        raise CheckpointError(f"{error}; train one with `polyamp train --model-type full`, or {other}") from None


def plan_full_start(
    model_dir: str | os.PathLike[str], load_id: str | None, load_full: bool | None, training: bool = False
) -> FullStart:
    """Which checkpoints a Full model loads (module docstring).

    For evaluation and transcription (``training`` False) both parts must exist (else a one-line
    CheckpointError naming the missing part and how to train it). For a new training run, the
    parts that exist are loaded (the others start from scratch); with no ``load_id`` and no part
    checkpoint at all, training starts from scratch.
    """
    if load_full is True:
        return FullStart(full=full_checkpoint(model_dir, load_id))
    if load_full is None and (load_id or not training):
        ref = _try_resolve(model_dir, "full", load_id or ANY_ID)
        if ref is not None:
            return FullStart(full=ref)
    part_id = load_id or ANY_ID
    parts = {part: ref for part in PARTS if (ref := _try_resolve(model_dir, part, part_id)) is not None}
    if not training:
        for part in PARTS:
            if part not in parts:
                model_id = "" if part_id == ANY_ID else f" --model-id {part_id}"
                raise CheckpointError(
                    f"cannot build the full model from parts: no {part} checkpoint for --load-id {part_id!r} under "
                    f"{os.path.join(os.fspath(model_dir), part)}; train it with `polyamp train --model-type {part}"
                    f"{model_id}`, or load a full run with --load-full true"
                )
    elif load_id and not parts:
        raise CheckpointError(
            f"no full, melodic or timbre checkpoint for --load-id {load_id!r} under {model_dir} to start from"
        )
    return FullStart(parts=parts)


def start_bindings(start: FullStart) -> list[str]:
    """Gin lines rebuilding the checkpoints' architecture: each part's hparams from its own run's
    operative config (a Full checkpoint: all three hparams classes of its config)."""
    from polyamp.config import HPARAMS_CLASSES, hparams_bindings_from_config

    sources: list[tuple[CheckpointRef, list[str]]] = []
    if start.full is not None:
        sources.append((start.full, ["full", "melodic", "timbre"]))
    sources += [(ref, [part]) for part, ref in start.parts.items()]
    lines: list[str] = []
    for ref, types in sources:
        config = operative_config_path(ref)
        if config is None:
            continue
        for model_type in types:
            lines += hparams_bindings_from_config(config, HPARAMS_CLASSES[model_type])
    return lines


def restore_full_start(model: Any, start: FullStart) -> None:
    """Restores the Full ``model`` (a FullModel) from ``start``: the whole checkpoint or each part."""
    from polyamp.loading import restore_weights

    if start.full is not None:
        restore_weights(model, start.full)
        return
    for part, ref in start.parts.items():
        restore_weights(getattr(model, part), ref)


def restore_part_from_full(model_type: str, model: Any, ref: CheckpointRef) -> None:
    """Restores the Melodic or Timbre ``model`` from its part of the Full checkpoint ``ref``."""
    from polyamp.loading import restore_weights
    from polyamp.models.full import part_holder

    restore_weights(part_holder(model_type, model), ref)


def full_run_hint(model_dir: str | os.PathLike[str], model_type: str, load_id: str) -> str:
    """A hint to add ``--load-full true`` when a Full checkpoint matches ``load_id``, else ``""``."""
    ref = _try_resolve(model_dir, "full", load_id)
    if ref is None:
        return ""
    return f"; a full run {ref.model_id!r} exists: add --load-full true to use its {model_type} part"
