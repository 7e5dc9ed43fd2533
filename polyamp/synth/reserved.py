"""music21 corpus works kept for independent evaluation: ``polyamp synth`` never renders them.

The list (``reserved_works.txt``, package data) names corpus paths as ``music21.corpus.parse``
takes them. Decisions are made for the whole WORK, conservatively (case-insensitive):

* ``composer/work/movement`` (``beethoven/opus59no1/movement1``): the work folder
  ``beethoven/opus59no1`` is reserved, every movement and format in it;
* ``composer/work.N`` (``bach/bwv66.6``, ``monteverdi/madrigal.3.1``): one trailing ``.<digits>``
  movement number is dropped to get the work key (``bach/bwv66``, ``monteverdi/madrigal.3``),
  and every path equal to the key or starting with ``key + "."`` or ``key + "/"`` is reserved,
  so ``bach/bwv244.3`` is reserved but ``bach/bwv2440`` and ``bach/bwv26.6`` are not;
* Humdrum movements that name their parent work (``!!!OPR:``, e.g. a Palestrina Agnus names its
  mass) also reserve every ``.krn`` file of the same composer folder with the same parent work,
  when the music21 corpus is installed (``palestrina/Agnus_01`` reserves its whole mass).

Paths are compared after :func:`normalize_corpus_path`; an absolute path outside the corpus
root is matched by each of its trailing sub-paths, and a bare name (``bwv66.6``, which
``corpus.parse`` also accepts) is matched against the work part of each key.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import os
import re
from pathlib import Path

SCORE_EXTENSIONS: tuple[str, ...] = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi", ".md", ".rntxt")
"""File extensions stripped before matching (compared case-insensitively)."""

RESERVED_LIST_NAME = "reserved_works.txt"

_MOVEMENT_NUMBER = re.compile(r"\.\d+$")
_PARENT_WORK = re.compile(r"^!!!OPR:\s*(.*?)\s*$", re.MULTILINE)


def reserved_entries() -> tuple[str, ...]:
    """The corpus paths listed in ``reserved_works.txt``, in file order (comments and blanks skipped)."""
    text = importlib.resources.files("polyamp.synth").joinpath(RESERVED_LIST_NAME).read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


@functools.lru_cache(maxsize=1)
def corpus_root() -> Path | None:
    """Folder of the installed music21 core corpus (found without importing music21), or None."""
    try:
        spec = importlib.util.find_spec("music21")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "corpus"
    return root if root.is_dir() else None


def strip_score_extension(path: str) -> str:
    """``path`` without one known score extension (``bach/bwv66.6.mxl`` -> ``bach/bwv66.6``;
    ``bach/bwv66.6`` is left alone: ``.6`` is a movement number, not an extension)."""
    lowered = path.lower()
    for extension in SCORE_EXTENSIONS:
        if lowered.endswith(extension) and len(path) > len(extension):
            return path[: -len(extension)]
    return path


def normalize_corpus_path(path: str | os.PathLike[str]) -> str:
    """Corpus-relative path with forward slashes and no score extension (case kept).

    Absolute paths inside the installed corpus are made relative to its root; ``.`` and empty
    components are dropped.
    """
    text = os.fspath(path).replace("\\", "/")
    root = corpus_root()
    if root is not None:
        prefix = root.as_posix().rstrip("/") + "/"
        if text.startswith(prefix):
            text = text[len(prefix) :]
    parts = [part for part in text.split("/") if part not in ("", ".")]
    return strip_score_extension("/".join(parts))


def work_key(entry: str) -> str:
    """The work a reserved entry stands for: ``beethoven/opus59no1/movement1`` -> ``beethoven/opus59no1``,
    ``bach/bwv66.6`` -> ``bach/bwv66``, ``bach/bwv269`` -> ``bach/bwv269``."""
    normalized = normalize_corpus_path(entry)
    parts = normalized.split("/")
    if len(parts) >= 3:
        return "/".join(parts[:2])
    if len(parts) == 2:
        return _MOVEMENT_NUMBER.sub("", normalized, count=1)
    return normalized


def _matches_key(candidate: str, key: str) -> bool:
    return candidate == key or candidate.startswith(key + ".") or candidate.startswith(key + "/")


@functools.lru_cache(maxsize=1)
def reserved_work_keys() -> tuple[str, ...]:
    """Work keys of every reserved entry (see :func:`work_key`), case kept, duplicates removed."""
    return tuple(dict.fromkeys(work_key(entry) for entry in reserved_entries()))


@functools.lru_cache(maxsize=1)
def _lower_work_keys() -> tuple[str, ...]:
    return tuple(key.lower() for key in reserved_work_keys())


def _parent_work(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = _PARENT_WORK.search(text)
    return match.group(1) if match and match.group(1) else None


@functools.lru_cache(maxsize=1)
def _parent_work_siblings() -> frozenset[str]:
    """Lower-cased normalised paths of Humdrum files that share a parent work with a reserved one."""
    root = corpus_root()
    if root is None:
        return frozenset()
    keys = _lower_work_keys()
    reserved: set[str] = set()
    for composer in sorted({key.split("/")[0] for key in keys}):
        folder = root / composer
        if not folder.is_dir():
            continue
        by_parent: dict[str, list[str]] = {}
        reserved_parents: set[str] = set()
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() != ".krn" or not path.is_file():
                continue
            parent = _parent_work(path)
            if parent is None:
                continue
            relative = normalize_corpus_path(path.relative_to(root).as_posix()).lower()
            by_parent.setdefault(parent, []).append(relative)
            if any(_matches_key(relative, key) for key in keys):
                reserved_parents.add(parent)
        for parent in reserved_parents:
            reserved.update(by_parent[parent])
    return frozenset(reserved)


def is_reserved(corpus_path: str | os.PathLike[str]) -> bool:
    """True if ``corpus_path`` belongs to a reserved work (any movement, format or excerpt).

    ``corpus_path`` is a corpus-relative path (``bach/bwv66.6`` or ``bach/bwv66.6.mxl``), an
    absolute path of a corpus file, or a bare work name; the decision is conservative.
    """
    normalized = normalize_corpus_path(corpus_path).lower()
    if not normalized:
        return False
    parts = normalized.split("/")
    keys = _lower_work_keys()
    siblings = _parent_work_siblings()
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if candidate in siblings or any(_matches_key(candidate, key) for key in keys):
            return True
    if len(parts) == 1:  # a bare name such as "bwv66.6": compare with the work part of each key
        return any(_matches_key(normalized, key.split("/")[-1]) for key in keys if "/" in key) or any(
            normalized == sibling.split("/")[-1] for sibling in siblings
        )
    return False


def reserved_corpus_paths(corpus_paths: list[str]) -> list[str]:
    """The members of ``corpus_paths`` that :func:`is_reserved` refuses, in the given order."""
    return [path for path in corpus_paths if is_reserved(path)]
