"""Turns user errors into one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def quiet_libraries() -> None:
    """Silences TensorFlow's C++ logs and library warnings that say nothing to a user."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TF_ENABLE_ONEDNN_OPTS is left to TensorFlow (on for x86 CPUs): oneDNN halves the CPU step time of
    # both models (benchmarks/cpu_step_time.py); its only message is hidden by the log level above.
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg or avconv")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="mir_eval")
    # Keras warns when the Timbre model's note attention sees a crop with a single note (a softmax over
    # one key is 1, which is right there).
    warnings.filterwarnings("ignore", message="You are using a softmax over axis", category=UserWarning)
    _log_warnings_plainly()


class _HideLibraryChatter(logging.Filter):
    """Drops warnings that Apache Beam logs about optional cloud clients it does not need."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not ("apache_beam" in record.pathname and record.levelno < logging.ERROR)


def _log_warnings_plainly() -> None:
    """Warnings from PolyAMP's loggers as ``warning: ...`` lines on stderr; library chatter hidden."""
    root = logging.getLogger()
    if any(getattr(handler, "_polyamp", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.addFilter(_HideLibraryChatter())
    handler._polyamp = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def fail(message: str, exit_code: int) -> None:
    """Prints ``error: message`` on stderr and exits with ``exit_code``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(exit_code)


def handle_errors(function: F) -> F:
    """Decorator for CLI commands: PolyampError -> one line + its exit code; Ctrl-C -> exit 130."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from polyamp.errors import PolyampError

        try:
            return function(*args, **kwargs)
        except PolyampError as error:
            # gin appends "In call to configurable ..." lines to errors raised inside configurables.
            lines = str(error).strip().splitlines()
            fail(lines[0] if lines else type(error).__name__, error.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except MemoryError:
            fail("out of memory; try a smaller batch size or window (see --gin-param)", 6)

    return wrapper  # type: ignore[return-value]
