"""A bounded in-memory cache of decoded audio, so a dataset that reads the same files again and again
(random sub-mixes of Slakh stems, many crops per track) decodes each file once.

Entries are float32 mono 16 kHz sample arrays keyed by file path; when the cached bytes would
exceed ``max_bytes``, the least recently used entries are dropped. Thread-safe: tf.data reads
tracks from several threads. The arrays handed out are read-only views, so a caller cannot
change what another caller gets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class AudioCache:
    """Least-recently-used cache of decoded audio, at most ``max_bytes`` bytes (0 = cache nothing)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def cached_bytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, key: str, load: Callable[[], np.ndarray]) -> np.ndarray:
        """The samples of ``key``: the cached array, or ``load()`` (float32 ``[num_samples]``), kept if it fits."""
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return cached
            self.misses += 1
        samples = np.asarray(load(), np.float32)
        if samples.nbytes > self.max_bytes:
            return samples
        samples.flags.writeable = False
        with self._lock:
            if key not in self._entries:
                self._entries[key] = samples
                self._bytes += samples.nbytes
                while self._bytes > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._bytes -= dropped.nbytes
            return self._entries.get(key, samples)
