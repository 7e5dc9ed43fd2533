"""Plugin registries: one per kind (frontend, model, dataset, postprocessor).

A plugin is any callable (usually a class) registered under a short name::

    from polyamp.registry import FRONTENDS

    @FRONTENDS.register("cqt")
    @gin.configurable
    class CQTFrontend: ...

Gin files choose plugins by name (``build_components.frontend = 'cqt'``) and configure
them by their gin name (``CQTFrontend.bins_per_octave = 28``). Other packages add plugins
through the ``polyamp.plugins`` entry-point group: each entry point names a module (or a
callable taking no arguments) that registers its plugins when loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from polyamp.errors import ConfigError

ENTRY_POINT_GROUP = "polyamp.plugins"

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Maps plugin names to callables for one kind of plugin."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; a name can be taken once."""

        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ConfigError(f"{self.kind} plugin name {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Returns the plugin called ``name``, or raises ConfigError listing the valid names."""
        load_builtin_plugins()
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

    def names(self) -> list[str]:
        """Sorted names of every registered plugin of this kind."""
        load_builtin_plugins()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        load_builtin_plugins()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        load_builtin_plugins()
        return name in self._items


FRONTENDS: Registry[Any] = Registry("frontend")
MODELS: Registry[Any] = Registry("model")
DATASETS: Registry[Any] = Registry("dataset")
POSTPROCESSORS: Registry[Any] = Registry("postprocessor")

ALL_REGISTRIES: dict[str, Registry[Any]] = {
    "frontends": FRONTENDS,
    "models": MODELS,
    "datasets": DATASETS,
    "postprocessors": POSTPROCESSORS,
}

# Modules whose import registers the built-in plugins. They import TensorFlow lazily, so
# listing plugins stays fast.
BUILTIN_PLUGIN_MODULES = (
    "polyamp.audio.frontends",
    "polyamp.models.melodic",
    "polyamp.models.timbre",
    "polyamp.models.full",
    "polyamp.data.datasets",
    "polyamp.data.slakh",
    "polyamp.data.mixture",
    "polyamp.data.nsynth",
    "polyamp.decode.onsets_frames",
    "polyamp.decode.multi_instrument",
)

_loaded = False


def load_builtin_plugins() -> None:
    """Imports the built-in plugin modules and the ``polyamp.plugins`` entry points, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_PLUGIN_MODULES:
        importlib.import_module(module)
    _load_entry_points()


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception as error:  # a broken third-party plugin must name itself
            raise ConfigError(
                f"plugin entry point {entry_point.name!r} ({entry_point.value}) failed to load: {error}"
            ) from error
        if callable(loaded) and not isinstance(loaded, type):
            loaded()
