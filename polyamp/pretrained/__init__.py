"""The shipped default model: where its files are, checking them, and choosing it when no model is named.

The folder of this package holds a Full model as its two parts, in the ordinary checkpoint layout
every loader understands (:mod:`polyamp.checkpoints`)::

    polyamp/pretrained/
        manifest.json                  files (path, bytes, sha256), the parts' steps and sources
        MODEL_CARD.md                  data, SoundFonts, steps, figures
        melodic/default/ckpt-N.index, ckpt-N.data-00000-of-00001, operative_config-N.gin, hparams.json
        timbre/default/ckpt-M.index,  ...

The checkpoints hold the model weights only (no optimizer slots): ``scripts/export_pretrained.py``
writes them. Because it is an ordinary model folder, ``--model-dir <this folder> --load-id default``
loads it like any trained run (``polyamp pretrained --path`` prints the folder).

Which model a command uses (:func:`choose_model`): with neither ``model_dir`` nor ``load_id`` the
shipped model (model type ``full`` unless another is asked for); with either, the user's
checkpoints (``model_dir`` default ``models``, ``load_id`` default ``*``, model type ``melodic``),
as before the model shipped. A ``./models`` folder is never picked up silently.

Every file is checked against the manifest's size and sha256 before the model loads (about 20 ms
for 7 MB; the result is cached per process while the files are unchanged). A missing or corrupt
file is one :class:`~polyamp.errors.CheckpointError` line naming it. The environment variable
``POLYAMP_PRETRAINED_DIR`` points the shipped model at another exported folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from polyamp.errors import CheckpointError, ConfigError

PRETRAINED_ENV = "POLYAMP_PRETRAINED_DIR"
MANIFEST_NAME = "manifest.json"
CARD_NAME = "MODEL_CARD.md"
MODEL_ID = "default"
PARTS = ("melodic", "timbre")
MAX_TOTAL_BYTES = 25_000_000
"""The shipped files' size limit: 25 MB (decimal) in all, manifest and card included."""
MANIFEST_FORMAT = 1
DEFAULT_USER_MODEL_DIR = "models"
_REINSTALL = "reinstall polyamp (pip install --force-reinstall polyamp), or pass --model-dir/--load-id"


def pretrained_dir() -> Path:
    """The shipped model's folder: ``$POLYAMP_PRETRAINED_DIR`` if set, else this package's folder."""
    override = os.environ.get(PRETRAINED_ENV)
    return Path(override).expanduser() if override else Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class PretrainedModel:
    """A verified shipped model: its folder (a model dir holding ``<part>/default/``) and manifest."""

    root: Path
    manifest: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.root

    @property
    def load_id(self) -> str:
        return str(self.manifest.get("model_id", MODEL_ID))

    def steps(self) -> dict[str, int]:
        """``{part: training step}`` of each part's checkpoint."""
        return {part: int(info["step"]) for part, info in self.manifest.get("parts", {}).items()}

    @property
    def total_bytes(self) -> int:
        return int(sum(entry["bytes"] for entry in self.manifest["files"]))

    def describe(self) -> str:
        """One line: ``shipped model polyamp-default (melodic step 1379, timbre step 3271)``."""
        parts = ", ".join(f"{part} step {step}" for part, step in self.steps().items())
        return f"shipped model {self.manifest.get('name', 'polyamp-default')} ({parts})"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in 1 MB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The parsed ``manifest.json`` of ``root`` (default :func:`pretrained_dir`); CheckpointError if unusable."""
    root = Path(root) if root is not None else pretrained_dir()
    path = root / MANIFEST_NAME
    if not path.is_file():
        where = f" ({PRETRAINED_ENV}={os.environ[PRETRAINED_ENV]})" if os.environ.get(PRETRAINED_ENV) else ""
        raise CheckpointError(f"the shipped model is missing: no {path}{where}; {_REINSTALL}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        for entry in files:
            str(entry["path"]), int(entry["bytes"]), str(entry["sha256"])
        for part in PARTS:
            int(manifest["parts"][part]["step"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"the shipped model's {path} is unreadable ({type(error).__name__}); {_REINSTALL}"
        ) from None
    return manifest


_VERIFIED: dict[tuple[str, tuple[tuple[str, int, int], ...]], PretrainedModel] = {}


def _signature(root: Path, manifest: dict[str, Any]) -> tuple[tuple[str, int, int], ...]:
    signature = []
    for entry in manifest["files"]:
        try:
            stat = (root / entry["path"]).stat()
            signature.append((entry["path"], stat.st_size, stat.st_mtime_ns))
        except OSError:
            signature.append((entry["path"], -1, -1))
    return tuple(signature)


def verify_pretrained(root: str | os.PathLike[str] | None = None, check_hashes: bool = True) -> PretrainedModel:
    """Checks every file the manifest lists (present, size, sha256) and that both parts have a
    checkpoint; returns the :class:`PretrainedModel`. CheckpointError (one line, naming the file) otherwise."""
    root = Path(root) if root is not None else pretrained_dir()
    manifest = read_manifest(root)
    key = (str(root.resolve()), _signature(root, manifest))
    if check_hashes and key in _VERIFIED:
        return _VERIFIED[key]
    for entry in manifest["files"]:
        path = root / entry["path"]
        if not path.is_file():
            raise CheckpointError(f"shipped model file {path} is missing; {_REINSTALL}")
        size = path.stat().st_size
        if size != int(entry["bytes"]):
            raise CheckpointError(
                f"shipped model file {path} is corrupt ({size} bytes, the manifest says {entry['bytes']}); {_REINSTALL}"
            )
        if check_hashes and file_sha256(path) != entry["sha256"]:
            raise CheckpointError(
                f"shipped model file {path} is corrupt (sha256 differs from the manifest); {_REINSTALL}"
            )
    listed = {entry["path"] for entry in manifest["files"]}
    model_id = str(manifest.get("model_id", MODEL_ID))
    for part in PARTS:
        step = int(manifest["parts"][part]["step"])
        index = f"{part}/{model_id}/ckpt-{step}.index"
        if index not in listed:
            raise CheckpointError(f"the shipped model's manifest lists no {index}; {_REINSTALL}")
    model = PretrainedModel(root, manifest)
    if check_hashes:
        _VERIFIED[key] = model
    return model


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """Where a command's model comes from: ``model_dir``/``load_id`` as the loaders take them,
    the ``model_type``, ``load_full`` and ``pretrained`` (the verified shipped model, or None)."""

    model_dir: Path
    load_id: str
    model_type: str
    load_full: bool | None
    pretrained: PretrainedModel | None = None


def choose_model(
    model_dir: str | os.PathLike[str] | None = None,
    load_id: str | None = None,
    model_type: str | None = None,
    load_full: bool | None = None,
) -> ModelChoice:
    """The shipped model when neither ``model_dir`` nor ``load_id`` is given (verified; model type
    ``full`` by default, its parts joined), else the user's checkpoints (``models``, ``*``, ``melodic``)."""
    if model_dir is None and load_id is None:
        if load_full:
            raise ConfigError(
                "--load-full: the shipped model is stored as separate melodic and timbre parts; "
                "drop --load-full, or name your own full run with --model-dir/--load-id"
            )
        model = verify_pretrained()
        model_type = model_type or "full"
        return ModelChoice(model.model_dir, model.load_id, model_type, False if model_type == "full" else None, model)
    return ModelChoice(
        Path(model_dir) if model_dir is not None else Path(DEFAULT_USER_MODEL_DIR),
        load_id if load_id is not None else "*",
        model_type or "melodic",
        load_full,
    )
