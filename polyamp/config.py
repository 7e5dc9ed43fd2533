"""Typed hyper-parameters, ``--hparams`` JSON overrides, and gin parsing.

Hyper-parameters are frozen dataclasses registered with gin, so gin files set them
(``MelodicHParams.fc_size = 256``) and the operative config saved beside every checkpoint
records them. ``--hparams`` JSON is validated against the dataclass (unknown names and wrong
types are one :class:`~polyamp.errors.ConfigError` listing the valid names) and then bound
into gin on top of the gin files, so a later ``eval`` or ``transcribe`` that reloads the
operative config sees exactly what training used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin

from polyamp.errors import ConfigError


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MelodicHParams:
    """Hyper-parameters of the Melodic model, its training and its decoding.

    Names and defaults follow the 2020 PolyAMP where it had them. Sizes are for the
    published Onsets-and-Frames model; ``gin/melodic/{tiny,small,full}.gin`` set presets.
    """

    # Optimisation.
    learning_rate: float = 6e-4
    decay_rate: float = 1e-5  # inverse-time decay per step: lr / (1 + decay_rate * step)
    clip_norm: float = 1.0
    batch_size: int = 8
    truncated_length_secs: float = 10.0  # training crop length in seconds (0 = 20 s)
    shuffle_buffer_size: int = 64
    # Labels.
    onset_length: float = 32.0  # ms
    offset_length: float = 32.0  # ms
    apply_sustain: bool = True
    # Loss weights: positives weigh (w + 1) times negatives; 0 = unweighted; < 0 favours precision.
    frames_true_weighing: float = 2.0
    onsets_true_weighing: float = 1.0
    offsets_true_weighing: float = 0.5
    velocity_loss_weight: float = 1.0
    activation_loss_weight: float = 1.0  # direct frame loss on the activation head (0 = as in O&F)
    # Decoding thresholds (0 disables a stage).
    predict_frame_threshold: float = 0.5
    predict_onset_threshold: float = 0.5
    predict_offset_threshold: float = 0.5
    active_onset_threshold: float = 0.6
    min_duration_ms: float = 0.0
    # Notes start this many frames after the start of their onset frame (0.5 = its centre, nearer the
    # true onset on average; polyamp.decode.onsets_frames). In [0, 1).
    predict_onset_shift_frames: float = 0.5
    # A sounding note's frames may dip below the frame threshold for up to this many frames (32 ms
    # each) without ending it, unless an onset resumes it (polyamp.decode.onsets_frames, rule 2).
    predict_max_gap_frames: int = 3
    # Longer dips, up to this many frames, are bridged too while the frame probability stays at or above
    # predict_dip_floor and no onset fires (rule 2; decaying piano notes). 0 turns it off.
    predict_max_dip_frames: int = 16
    predict_dip_floor: float = 0.1
    # Architecture (one conv stack per head, as in Onsets and Frames, unless share_conv_features).
    share_conv_features: bool = False
    num_filters: tuple[int, ...] = (48, 48, 96)
    temporal_sizes: tuple[int, ...] = (3, 3, 3)
    freq_sizes: tuple[int, ...] = (3, 3, 3)
    pool_sizes: tuple[int, ...] = (1, 2, 2)
    dropout_drop_amts: tuple[float, ...] = (0.0, 0.25, 0.25)
    use_batch_normalization: bool = True
    conv_pool_first: bool = False  # pool each conv layer's output before batch norm and ELU (cheaper)
    fc_size: int = 768
    fc_dropout_drop_amt: float = 0.5
    onset_lstm_units: int = 256
    offset_lstm_units: int = 256
    velocity_lstm_units: int = 0
    frame_lstm_units: int = 0
    combined_lstm_units: int = 256
    melodic_leaky_alpha: float = 0.33  # ELU alpha


def _hparams_classes() -> dict[str, type]:
    from polyamp.models.full_hparams import FullHParams
    from polyamp.models.timbre_hparams import TimbreHParams

    return {"melodic": MelodicHParams, "timbre": TimbreHParams, "full": FullHParams}


HPARAMS_CLASSES: dict[str, type] = _hparams_classes()


def hparams_class(model_type: str) -> type:
    """The hparams dataclass of ``model_type``."""
    try:
        return HPARAMS_CLASSES[model_type]
    except KeyError:
        valid = ", ".join(sorted(HPARAMS_CLASSES))
        raise ConfigError(f"unknown model type {model_type!r}; valid model types: {valid}") from None


def _check_value(name: str, annotation: Any, value: Any) -> Any:
    """Returns ``value`` coerced to ``annotation`` or raises ConfigError naming ``name``."""
    expected = annotation
    if isinstance(expected, str):
        expected = eval(expected, {"tuple": tuple, "int": int, "float": float, "bool": bool, "str": str})  # noqa: S307
    origin = typing.get_origin(expected)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(expected)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"hparam {name!r} must be a list of {item_type.__name__}, got {value!r}")
        return tuple(_check_value(name, item_type, item) for item in value)
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"hparam {name!r} must be true or false, got {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"hparam {name!r} must be an integer, got {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"hparam {name!r} must be a number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"hparam {name!r} must be a string, got {value!r}")
        return value
    return value


def hparams_owners(model_type: str) -> list[type]:
    """The hparams classes ``--hparams`` names of ``model_type`` may belong to, first owner first.

    The Full model accepts the names of FullHParams, MelodicHParams and TimbreHParams; a name
    several classes share (``batch_size``, ``truncated_length_secs``...) belongs to the first.
    """
    if model_type == "full":
        return [HPARAMS_CLASSES["full"], HPARAMS_CLASSES["melodic"], HPARAMS_CLASSES["timbre"]]
    return [hparams_class(model_type)]


def hparams_owner(model_type: str, name: str) -> type:
    """The hparams class that owns ``name`` for ``model_type`` (ConfigError when none does)."""
    for owner in hparams_owners(model_type):
        if name in {field.name for field in dataclasses.fields(owner)}:
            return owner
    raise ConfigError(f"unknown hparam {name!r} for the {model_type} model")


def load_hparams_object(hparams_json: str) -> dict[str, Any]:
    """``--hparams`` text as a JSON object (names not yet checked); ConfigError when it is not one."""
    try:
        overrides = json.loads(hparams_json)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--hparams is not valid JSON ({error.msg}): {hparams_json!r}") from None
    except RecursionError:  # json's decoder recurses once per level of nesting
        raise ConfigError(f"--hparams is nested too deeply to be hyper-parameters: {hparams_json[:60]!r}...") from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"--hparams must be a JSON object such as '{{\"fc_size\": 256}}', got {hparams_json!r}")
    return overrides


def parse_hparams_json(model_type: str, hparams_json: str | None) -> dict[str, Any]:
    """Validates ``--hparams`` JSON for ``model_type``; returns ``{name: typed value}``."""
    if not hparams_json:
        return {}
    overrides = load_hparams_object(hparams_json)
    fields = {}
    for owner in reversed(hparams_owners(model_type)):  # the first owner wins a shared name
        fields.update({field.name: field for field in dataclasses.fields(owner)})
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown hparam {', '.join(map(repr, unknown))} for the {model_type} model; "
            f"valid names: {', '.join(sorted(fields))}"
        )
    return {
        name: _present_instruments_names(value)
        if name == "present_instruments"
        else _check_value(name, fields[name].type, value)
        for name, value in overrides.items()
    }


def _present_instruments_names(value: Any) -> tuple[str, ...]:
    """``present_instruments`` as family names: from names, ``"string,brass"`` or the 2020 12 numbers 0/1."""
    from polyamp.decode.multi_instrument import present_instruments_to_families
    from polyamp.notes.families import FAMILY_NAMES

    if isinstance(value, (list, tuple)) and not value:
        return ()
    families = present_instruments_to_families(value, source="hparam 'present_instruments'")
    return tuple(FAMILY_NAMES[family] for family in families or ())


def bind_hparams(model_type: str, overrides: dict[str, Any]) -> None:
    """Binds validated hparam overrides into gin (they then reach the operative config)."""
    with gin.unlock_config():
        for name, value in overrides.items():
            gin.bind_parameter(f"{hparams_owner(model_type, name).__name__}.{name}", value)


def hparams_to_dict(hparams: Any) -> dict[str, Any]:
    """JSON-friendly dict of a hparams dataclass."""
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(hparams).items()
    }


# ---------------------------------------------------------------------------------------------
# Gin.


def builtin_gin_dir() -> Path:
    """The folder holding the built-in gin files: ``polyamp/configs`` when installed, ``gin/`` in a checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "configs"
    if installed.is_dir():
        return installed
    return package.parent / "gin"


def gin_search_paths() -> list[str]:
    """Search path for ``--gin-file`` names: the working directory, then the built-in gin files."""
    return [os.getcwd(), str(builtin_gin_dir())]


def resolve_gin_file(name: str) -> str:
    """Finds a gin file by path or by name in the search path (``melodic/small.gin``)."""
    candidates = [name] if os.path.isabs(name) else [os.path.join(base, name) for base in gin_search_paths()]
    if not name.endswith(".gin"):
        candidates += [candidate + ".gin" for candidate in candidates]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    available = ", ".join(list_builtin_gin_files())
    raise ConfigError(f"gin file {name!r} not found; built-in gin files: {available}")


def list_builtin_gin_files() -> list[str]:
    """Names of the built-in gin files, relative to the built-in gin folder."""
    base = builtin_gin_dir()
    return sorted(str(path.relative_to(base)) for path in base.rglob("*.gin"))


CONFIGURABLE_MODULES = (
    "polyamp.components",
    "polyamp.inference",
    "polyamp.training",
    "polyamp.evaluation",
    "polyamp.data.datasets",
    "polyamp.synth.arrange",
    "polyamp.synth.pipeline",
)


def parse_gin(
    gin_files: Sequence[str] = (),
    gin_params: Sequence[str] = (),
    *,
    operative_config: str | None = None,
    default_files: Sequence[str] = (),
    base_bindings: Sequence[str] = (),
) -> None:
    """Parses gin config in DDSP order: defaults, a saved operative config, user files, user params.

    ``base_bindings`` (gin lines such as the hparams of a Full model's separately trained parts)
    are parsed after the saved operative config and before the user's files.

    All errors (a missing file, an unknown configurable or parameter, a syntax error) become
    one ConfigError line.
    """
    import importlib

    from polyamp.registry import load_builtin_plugins

    load_builtin_plugins()  # every configurable must be registered before parsing
    for module in CONFIGURABLE_MODULES:
        importlib.import_module(module)
    _guard_gin_package_lookup()
    for path in gin_search_paths():
        gin.add_config_file_search_path(path)
    # gin logs "Path not found" for every search-path entry an include misses before it hits;
    # real failures still raise, so silence the noise while parsing.
    root_logger = logging.getLogger()
    previous_level = root_logger.level
    root_logger.setLevel(logging.CRITICAL)
    try:
        _parse_all(default_files, operative_config, gin_files, gin_params, base_bindings)
    finally:
        root_logger.setLevel(previous_level)


def _guard_gin_package_lookup() -> None:
    """Makes gin's package-resource lookup of an include safe in any working directory.

    For ``include 'models/melodic.gin'`` gin also asks whether ``models`` is an importable package.
    A ``models/`` folder without ``__init__.py`` in the working directory (``--model-dir models``
    makes one) is a namespace package with no file, and gin 0.5 then raises TypeError instead of
    trying the next search path. The guarded check treats that case as "not found".
    """
    from gin import config as gin_config
    from gin import resource_reader

    def package_file_exists(config_path: str) -> bool:
        try:
            return resource_reader.system_path_file_exists(config_path)
        except TypeError:
            return False

    readers = gin_config._FILE_READERS  # gin has no public way to replace a registered check
    for index, (reader, exists) in enumerate(readers):
        if exists is resource_reader.system_path_file_exists:
            readers[index] = (reader, package_file_exists)


def _parse_all(
    default_files: Sequence[str],
    operative_config: str | None,
    gin_files: Sequence[str],
    gin_params: Sequence[str],
    base_bindings: Sequence[str] = (),
) -> None:
    with gin.unlock_config():
        gin.clear_config()
        for name in default_files:
            _parse_file(resolve_gin_file(name))
        if operative_config:
            _parse_file(operative_config, skip_unknown=True)
        for binding in base_bindings:
            gin.parse_config(binding)
        for name in gin_files:
            _parse_file(resolve_gin_file(name))
        for binding in gin_params:
            try:
                gin.parse_config(binding)
            except Exception as error:  # gin raises ValueError, KeyError, SyntaxError...
                raise ConfigError(f"bad --gin-param {binding!r}: {_one_line(error)}") from None


def _parse_file(path: str, skip_unknown: bool = False) -> None:
    try:
        gin.parse_config_file(path, skip_unknown=skip_unknown)
    except Exception as error:
        raise ConfigError(f"bad gin file {path}: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def operative_config_str() -> str:
    """The operative gin config of everything called so far."""
    return gin.operative_config_str()


def hparams_bindings_from_config(config_path: str | os.PathLike[str], hparams_cls: type) -> list[str]:
    """Gin lines (``MelodicHParams.fc_size = 256``) for the fields of ``hparams_cls`` a saved config binds.

    Used to rebuild a separately trained part of the Full model exactly as it was trained; only
    that class's bindings are taken (not the part run's ``train.*`` settings). Clears gin.
    """
    parse_gin(operative_config=str(config_path))
    lines = []
    for field in dataclasses.fields(hparams_cls):
        key = f"{hparams_cls.__name__}.{field.name}"
        try:
            value = gin.query_parameter(key)
        except ValueError:
            continue
        lines.append(f"{key} = {value!r}")
    return lines
