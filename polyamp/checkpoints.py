"""Model-directory layout, ``--load-id`` resolution and atomic checkpoint saving.

Layout: ``<model_dir>/<model_type>/<model_id>/`` holds TensorFlow checkpoints
(``ckpt-<step>.index`` / ``.data-*`` and the ``checkpoint`` state file, all written by
``tf.train.CheckpointManager``, which writes to temporary names and renames, so a kill never
leaves a half-written checkpoint listed; :func:`latest_checkpoint` also ignores any checkpoint
whose index or data shards are not all there under their final names),
``operative_config-<step>.gin`` (the gin config the run used), ``hparams.json``, TensorBoard
events under ``train/`` and evaluation JSON under ``eval/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from pathlib import Path

from polyamp.errors import CheckpointError, ConfigError

ANY_ID = "*"
_CHECKPOINT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_ANY_CHECKPOINT_FILE = re.compile(r"^ckpt-(\d+)[._]")
_DATA_SHARD = re.compile(r"^(ckpt-\d+)\.data-(\d{5})-of-(\d{5})$")
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class CheckpointRef:
    """One saved checkpoint: its run folder, its prefix (``.../ckpt-N``) and its step."""

    run_dir: Path
    prefix: str
    step: int

    @property
    def model_id(self) -> str:
        return self.run_dir.name


def validate_model_id(model_id: str) -> str:
    """Returns ``model_id`` if it is a safe folder name, else raises ConfigError."""
    if not _VALID_ID.match(model_id):
        raise ConfigError(
            f"--model-id {model_id!r} must start with a letter or digit and use only letters, digits, '.', '_', '-'"
        )
    return model_id


def run_dir(model_dir: str | os.PathLike[str], model_type: str, model_id: str) -> Path:
    """``<model_dir>/<model_type>/<model_id>``."""
    return Path(model_dir).expanduser() / model_type / validate_model_id(model_id)


def latest_checkpoint(directory: str | os.PathLike[str]) -> CheckpointRef | None:
    """The newest complete checkpoint in one run folder, or None.

    Reads the ``checkpoint`` state file first; falls back to the highest ``ckpt-N.index`` whose
    data file exists (the state file is rewritten last, so it never names a partial checkpoint).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    import tensorflow as tf

    state_prefix = tf.train.latest_checkpoint(str(directory))
    if state_prefix and _is_complete(state_prefix):
        return CheckpointRef(directory, state_prefix, _step_of(state_prefix))
    steps = sorted(
        (int(match.group(1)) for name in os.listdir(directory) if (match := _CHECKPOINT_INDEX.match(name))),
        reverse=True,
    )
    for step in steps:
        prefix = str(directory / f"ckpt-{step}")
        if _is_complete(prefix):
            return CheckpointRef(directory, prefix, step)
    return None


def _is_complete(prefix: str) -> bool:
    """``prefix.index`` and every data shard it needs (``prefix.data-0000i-of-0000n``) exist, under their
    final names (TensorFlow writes ``*.tempstate*`` files and a ``<prefix>_temp`` folder first)."""
    folder, base = os.path.split(prefix)
    if not os.path.isfile(prefix + ".index"):
        return False
    shards: dict[int, set[int]] = {}
    for name in os.listdir(folder):
        match = _DATA_SHARD.match(name)
        if match and match.group(1) == base:
            shards.setdefault(int(match.group(3)), set()).add(int(match.group(2)))
    return any(count > 0 and present == set(range(count)) for count, present in shards.items())


def remove_partial_checkpoints(directory: str | os.PathLike[str]) -> None:
    """:func:`remove_partial_checkpoint` for every step that has files in ``directory`` (a killed run's
    leftovers; complete checkpoints are kept). Only for a folder no other process is saving into."""
    directory = Path(directory)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    steps = {int(match.group(1)) for name in names if (match := _ANY_CHECKPOINT_FILE.match(name))}
    for step in sorted(steps):
        remove_partial_checkpoint(directory, step)


def remove_partial_checkpoint(directory: str | os.PathLike[str], step: int) -> None:
    """Deletes what a failed or killed save of ``ckpt-<step>`` left in ``directory``: its temporary
    files and folder, and its data or index files unless the checkpoint is complete."""
    directory = Path(directory)
    base = f"ckpt-{step}"
    complete = _is_complete(str(directory / base))
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        path = directory / name
        temporary = name == f"{base}_temp" or (name.startswith(base + ".") and ".tempstate" in name)
        temporary = temporary or (name.startswith("checkpoint.tmp") or name.startswith(".checkpoint.tmp"))
        ours = name in (f"{base}.index",) or bool((match := _DATA_SHARD.match(name)) and match.group(1) == base)
        if temporary or (ours and not complete):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()


def _step_of(prefix: str) -> int:
    match = re.search(r"ckpt-(\d+)$", prefix)
    return int(match.group(1)) if match else 0


def resolve_checkpoint(model_dir: str | os.PathLike[str], model_type: str, load_id: str) -> CheckpointRef:
    """The checkpoint ``--load-id`` names: that id's latest, or with ``*`` the newest of any id.

    Raises CheckpointError naming the folder searched when nothing matches.
    """
    type_dir = Path(model_dir).expanduser() / model_type
    if load_id == ANY_ID:
        candidates = [
            ref
            for child in (sorted(type_dir.iterdir()) if type_dir.is_dir() else [])
            if child.is_dir() and (ref := latest_checkpoint(child)) is not None
        ]
        if not candidates:
            raise CheckpointError(f"no {model_type} checkpoint found under {type_dir} (--load-id '*')")
        return max(candidates, key=lambda ref: os.path.getmtime(ref.prefix + ".index"))
    ref = latest_checkpoint(run_dir(model_dir, model_type, load_id))
    if ref is None:
        available = sorted(child.name for child in type_dir.iterdir() if child.is_dir()) if type_dir.is_dir() else []
        hint = f"; ids with a folder there: {', '.join(available)}" if available else ""
        raise CheckpointError(f"no checkpoint for --load-id {load_id!r} under {type_dir}{hint}")
    return ref


def operative_config_path(ref: CheckpointRef) -> Path | None:
    """The operative gin config saved with ``ref`` (or the newest one in its folder)."""
    exact = ref.run_dir / f"operative_config-{ref.step}.gin"
    if exact.is_file():
        return exact
    configs = sorted(ref.run_dir.glob("operative_config-*.gin"), key=lambda path: _step_of(path.stem))
    return configs[-1] if configs else None
