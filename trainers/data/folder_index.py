"""The listing of a ``folder:`` dataset, scanned once and kept in an index file.

A folder dataset's split directory holds one subfolder per class. Its first scan lists every
file and checks each image with PIL (0.2 ms per image: about four minutes for ImageNet's 1.28
million files); the result goes to an index file, and later runs (and the other workers of a
run on the same machine) reuse it while the folder is unchanged.

"Unchanged" is decided per directory, from its modification time: adding, removing or
renaming a file changes its directory's ``mtime``, so a later run re-lists and re-checks only
the directories whose ``mtime`` differs from the one recorded (a new or removed subdirectory
changes its parent's). A directory modified within :data:`RACY_NS` of the scan that recorded
it is checked again next time (a change in the same clock tick would otherwise go unseen, as
git does for its index). A file rewritten in place under the same name changes no directory:
it is not re-checked, and if it no longer decodes the training pipeline drops and counts it.

The index is a JSON file named after the directory and its class names, in
:func:`cache_dir` (``$KERAS_ARCHS_CACHE/folder_index``, default
``~/.cache/keras_archs/folder_index``), written atomically (a temporary file, then a rename),
so workers that scan at the same time each leave a whole, identical file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INDEX_VERSION = 1
# A directory whose mtime is this close to (or after) the scan's start is re-checked next time.
RACY_NS = 2_000_000_000
# Extensions tf.io.decode_image reads (the same list as trainers.data.datasets).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_GREY_MODES = {"1", "L", "I", "I;16", "F", "LA"}


def cache_dir() -> Path:
    """Where index files go: ``$KERAS_ARCHS_CACHE`` or ``~/.cache/keras_archs`` (XDG), plus ``folder_index``."""
    root = os.environ.get("KERAS_ARCHS_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "keras_archs")
    return Path(root) / "folder_index"


@dataclasses.dataclass(frozen=True)
class FolderIndex:
    """What a split directory holds, in the order training reads it.

    Attributes:
        files, labels: the readable images (full paths, class by class, each class's files
            sorted by path) and their class indices.
        bad: files that are not images or that PIL cannot read (skipped).
        sizes: the distinct ``(width, height)`` of the images; ``grey``: all are grey.
        checked_dirs, reused_dirs: directories listed and checked by this call, and
            directories taken from the index unchanged.
        checked_files: images opened with PIL by this call (0 when the index was reused whole).
        index_path: the index file read or written (``None``: it could not be written).
    """

    files: tuple[str, ...]
    labels: tuple[int, ...]
    bad: tuple[str, ...]
    sizes: frozenset
    grey: bool
    checked_dirs: int = 0
    reused_dirs: int = 0
    checked_files: int = 0
    index_path: str | None = None


def index_path(directory: Path, class_names: tuple[str, ...], root: Path | None = None) -> Path:
    """The index file of ``directory`` with these class names (in ``root``, default :func:`cache_dir`)."""
    key = json.dumps([os.path.abspath(directory), list(class_names)]).encode()
    digest = hashlib.sha256(key).hexdigest()[:24]
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(os.path.abspath(directory)).name)[:40]
    return (root or cache_dir()) / f"{name}-{digest}.json"


def check_image(path: str) -> tuple[tuple[int, int], str] | None:
    """``((width, height), mode)`` of a readable image, ``None`` for anything else: a file
    whose extension ``tf.io.decode_image`` does not read, or that PIL cannot open or verify
    (header and, for PNG, checksums)."""
    from PIL import Image

    if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
        return None
    try:
        with Image.open(path) as im:
            size, mode = im.size, im.mode
            im.verify()
    except Exception:  # any failure means "unreadable"
        return None
    return (int(size[0]), int(size[1])), str(mode)


def _list_directory(path: Path) -> tuple[list[str], list[str]]:
    """Sorted file names (hidden ones left out) and subdirectory names of ``path``."""
    files, subdirs = [], []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            elif entry.is_file() and not entry.name.startswith("."):
                files.append(entry.name)
    return sorted(files), sorted(subdirs)


def _read_index(path: Path, directory: Path, class_names: tuple[str, ...]) -> dict[str, Any]:
    """The recorded directories of a valid index for this directory, {} otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != INDEX_VERSION
        or data.get("directory") != os.path.abspath(directory)
        or data.get("class_names") != list(class_names)
        or not isinstance(data.get("dirs"), dict)
    ):
        return {}
    return data["dirs"]


def _write_index(path: Path, payload: dict[str, Any]) -> bool:
    """Write ``payload`` to ``path`` atomically; ``False`` if the cache is not writable."""
    from trainers.outputs import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, separators=(",", ":"))

    try:
        atomic_write(str(path), write)
    except OSError:
        return False
    return True


def _check_directory(
    path: Path, rel: str, label: int, scan_start_ns: int, mtime_ns: int, check: Callable[[str], Any]
) -> tuple[dict[str, Any], int]:
    """List one directory and check its files: its index entry and the number checked."""
    names, subdirs = _list_directory(path)
    files = []
    for name in names:
        result = check(str(path / name))
        files.append([name, None] if result is None else [name, [result[0][0], result[0][1], result[1]]])
    entry = {
        "mtime_ns": mtime_ns,
        "racy": mtime_ns >= scan_start_ns - RACY_NS,
        "label": label,
        "files": files,
        "subdirs": subdirs,
    }
    return entry, len(names)


def load_folder_index(
    directory: str | os.PathLike,
    class_names: tuple[str, ...],
    *,
    root: str | os.PathLike | None = None,
    check: Callable[[str], tuple[tuple[int, int], str] | None] = check_image,
) -> FolderIndex:
    """The :class:`FolderIndex` of ``directory`` (class subfolders ``class_names``).

    Directories unchanged since the index in ``root`` (default :func:`cache_dir`) was
    written are taken from it; the others are listed and their files checked with
    ``check``; the index is then rewritten if anything changed. An unwritable cache only
    means the next run scans again.
    """
    directory = Path(directory)
    path = index_path(directory, class_names, Path(root) if root is not None else None)
    old = _read_index(path, directory, class_names)
    scan_start_ns = time.time_ns()
    dirs: dict[str, dict[str, Any]] = {}
    checked_dirs = reused_dirs = checked_files = 0
    for label, name in enumerate(class_names):
        stack = [name]
        while stack:
            rel = stack.pop()
            try:
                mtime_ns = os.stat(directory / rel).st_mtime_ns
            except FileNotFoundError:
                continue
            previous = old.get(rel)
            if (
                previous is not None
                and previous.get("mtime_ns") == mtime_ns
                and not previous.get("racy", True)
                and previous.get("label") == label
            ):
                entry = previous
                reused_dirs += 1
            else:
                entry, n = _check_directory(directory / rel, rel, label, scan_start_ns, mtime_ns, check)
                checked_dirs += 1
                checked_files += n
            dirs[rel] = entry
            stack.extend(f"{rel}/{sub}" for sub in reversed(entry["subdirs"]))
    written: str | None = str(path)
    if checked_dirs or set(dirs) != set(old):
        payload = {
            "version": INDEX_VERSION,
            "directory": os.path.abspath(directory),
            "class_names": list(class_names),
            "scanned_ns": scan_start_ns,
            "dirs": dirs,
        }
        if not _write_index(path, payload):
            written = None
    return _assemble(directory, class_names, dirs, checked_dirs, reused_dirs, checked_files, written)


def _assemble(
    directory: Path,
    class_names: tuple[str, ...],
    dirs: dict[str, dict[str, Any]],
    checked_dirs: int,
    reused_dirs: int,
    checked_files: int,
    written: str | None,
) -> FolderIndex:
    """The files in training order: class by class, each class's files sorted by path
    components (the order ``sorted(Path.rglob(...))`` gives)."""
    files, labels, bad, sizes, modes = [], [], [], set(), set()
    by_class: dict[int, list[tuple[tuple[str, ...], str, Any]]] = {}
    for rel, entry in dirs.items():
        for name, meta in entry["files"]:
            relpath = f"{rel}/{name}"
            by_class.setdefault(int(entry["label"]), []).append((tuple(relpath.split("/")), relpath, meta))
    for label in range(len(class_names)):
        for _, relpath, meta in sorted(by_class.get(label, []), key=lambda item: item[0]):
            full = str(directory / relpath)
            if meta is None:
                bad.append(full)
                continue
            files.append(full)
            labels.append(label)
            sizes.add((int(meta[0]), int(meta[1])))
            modes.add(str(meta[2]))
    grey = bool(modes) and modes <= _GREY_MODES
    return FolderIndex(
        files=tuple(files),
        labels=tuple(labels),
        bad=tuple(bad),
        sizes=frozenset(sizes),
        grey=grey,
        checked_dirs=checked_dirs,
        reused_dirs=reused_dirs,
        checked_files=checked_files,
        index_path=written,
    )
