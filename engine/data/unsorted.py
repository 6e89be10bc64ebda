"""Photos not sorted yet: a dataset's `unsorted/` folder (or one the user points at), checked like a class.

The folder is not a class (`engine.data.walk`); its photos are what "label
these next" ranks (`engine.train.review.label_next`). They are listed with
the class walk's rules (no links out, no pipes, hidden files ignored) and
each is checked and hashed like a scanned photo, with the scan cache's reuse
(one cache per folder). A photo whose bytes are already in the dataset (filed
before, from a folder outside it) is left out.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import ImageError, StudioError
from engine.core.limits import MAX_IMAGE_BYTES
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.data import scan_cache
from engine.data.dataset import ImageRecord, Problem
from engine.data.images import check_image
from engine.data.walk import UNSORTED_FOLDER, is_unsorted_folder, walk_unsorted


@dataclass
class UnsortedPhotos:
    """The photos of an unsorted folder.

    Attributes:
        folder: the folder (resolved).
        images: the usable photos (`ImageRecord`s with no label and no split; `rel_path`
            relative to the dataset root when the folder is inside it, else to the folder).
        problems: the files skipped, with reasons.
        already_filed: photos left out because the same bytes are in a class already.
    """

    folder: Path
    images: list[ImageRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    already_filed: int = 0


def unsorted_folder(root: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> Path:
    """The folder of unsorted photos: `folder` when given, else `root`'s `unsorted/` (any case).

    Args:
        root: the dataset folder.
        folder: another folder of unsorted photos. Defaults to None.

    Returns:
        The resolved folder (for the default one it may not exist yet: no photos then).

    Raises:
        StudioError: `folder` was given but is not a folder, or is the dataset or one of its classes.
    """
    real_root = Path(root).expanduser().resolve()
    if folder is None:
        try:
            names = [p.name for p in real_root.iterdir() if p.is_dir() and is_unsorted_folder(p.name)]
        except OSError:
            names = []
        return real_root / (min(names) if names else UNSORTED_FOLDER)
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise StudioError(
            f"unsorted folder {str(folder)!r} is not a folder; give the folder that holds the photos "
            "to label, or leave it out to use the dataset's unsorted/ folder"
        )
    path = path.resolve()
    inside = path.is_relative_to(real_root)
    if path == real_root or (inside and not is_unsorted_folder(path.relative_to(real_root).parts[0])):
        raise StudioError(
            f"{path.name} is the dataset or one of its classes, not a folder of unsorted photos; "
            f"put them in {UNSORTED_FOLDER}/ or in a folder outside the dataset"
        )
    return path


def _check(path: Path, max_bytes: int) -> list[Any]:
    try:
        checked = check_image(path, max_bytes=max_bytes)
    except ImageError as exc:
        return ["bad", "unreadable", exc.reason]
    info = checked.info
    return ["ok", checked.sha256, info.width, info.height, info.format, checked.size_bytes]


def scan_unsorted(
    root: str | os.PathLike[str],
    folder: str | os.PathLike[str] | None = None,
    *,
    filed: set[str] | frozenset[str] = frozenset(),
    progress: ProgressCallback | None = None,
) -> UnsortedPhotos:
    """Check every photo of the unsorted folder.

    Args:
        root: the dataset folder.
        folder: another folder of unsorted photos (see `unsorted_folder`). Defaults to None.
        filed: content hashes already in the dataset's classes (those photos are left out).
            Defaults to none.
        progress: called with `Progress("unsorted", ...)`. Defaults to None.

    Returns:
        The `UnsortedPhotos` (no photos when the folder does not exist).

    Raises:
        StudioError: as `unsorted_folder`, or the folder is too big or too deep to walk.
    """
    real_root = Path(root).expanduser().resolve()
    where = unsorted_folder(real_root, folder)
    base = real_root if where.is_relative_to(real_root) else where
    found = UnsortedPhotos(where)
    files = walk_unsorted(where, found.problems, root=base)
    cache = scan_cache.load(where)
    new_cache: dict[str, list[Any]] = {}
    results: dict[Path, list[Any]] = {}
    todo: list[tuple[Path, str, int, int]] = []
    for path in files:
        rel = path.relative_to(base).as_posix()
        try:
            st = path.stat()
        except OSError as exc:
            found.problems.append(Problem(rel, "unreadable", f"cannot read ({exc.strerror or exc})"))
            continue
        hit = cache.get(rel)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            results[path] = hit[2]
            new_cache[rel] = hit
        else:
            todo.append((path, rel, st.st_size, st.st_mtime_ns))
    tracker = ProgressTracker("unsorted", len(files), progress, unit="images")
    tracker.advance(len(results))
    max_bytes = MAX_IMAGE_BYTES.value()
    with ThreadPoolExecutor(max_workers=max(2, min(8, 2 * (os.cpu_count() or 1)))) as pool:
        for (path, rel, size, mtime), result in zip(
            todo, pool.map(lambda t: _check(t[0], max_bytes), todo), strict=True
        ):
            results[path] = result
            new_cache[rel] = [size, mtime, result]
            tracker.advance()
    tracker.finish()
    if todo or set(new_cache) != set(cache):
        scan_cache.save(where, new_cache)
    for path in files:
        result = results.get(path)
        if result is None:
            continue
        rel = path.relative_to(base).as_posix()
        if result[0] == "bad":
            found.problems.append(Problem(rel, result[1], result[2]))
        elif result[1] in filed:
            found.already_filed += 1
        else:
            _, sha, width, height, fmt, size = result
            found.images.append(
                ImageRecord(path, rel, "", where.name, sha, width, height, fmt, size, "")
            )
    return found


def file_unsorted(
    root: str | os.PathLike[str],
    photos: list[str],
    class_name: str,
    *,
    folder: str | os.PathLike[str] | None = None,
    studio_home: str | os.PathLike[str] | None = None,
) -> Any:
    """File unsorted photos into a class, as one journaled, undoable edit (`engine.data.edits`).

    A photo in the dataset's own `unsorted/` is moved; one in a folder outside the
    dataset is copied in (its folder is never changed), under its own name's stem.

    Args:
        root: the dataset folder.
        photos: the photos, as `scan_unsorted` lists them (`rel_path`).
        class_name: the class folder to file them in (created if new; not `unsorted`).
        folder: the unsorted folder outside the dataset they come from. Defaults to the
            dataset's `unsorted/`.
        studio_home: the studio's home. Defaults to the studio's.

    Returns:
        The edit (`move`, or `add` for copies).

    Raises:
        StudioError: a photo is not in the unsorted folder, the class name cannot be a
            folder or is `unsorted`, or the dataset is a user's own folder not opted in.
    """
    from engine.data import edits

    if is_unsorted_folder(str(class_name).strip()):
        raise StudioError(
            f"{class_name!r} is the folder of unsorted photos, not a class; choose a class"
        )
    edits.check_class_name(class_name)
    real_root = Path(root).expanduser().resolve()
    where = unsorted_folder(real_root, folder)
    inside = where.is_relative_to(real_root)
    base = real_root if inside else where
    paths = []
    for given in photos:
        path = (base / given).parent.resolve() / Path(given).name
        if not path.is_relative_to(where) or path.is_symlink() or not path.is_file():
            raise StudioError(
                f"{given} is not a photo of the unsorted folder {where.name}: choose one listed"
            )
        paths.append(path)
    if inside:
        return edits.move_to_class(real_root, paths, class_name, studio_home=studio_home)
    from engine.data.edits import IMAGE_SUFFIXES, add_photos, history

    for path in paths:
        suffix = path.suffix.lower() if path.suffix.lower() in IMAGE_SUFFIXES else ".jpg"
        add_photos(
            real_root, class_name, [path.read_bytes()], suffix=suffix,
            name_prefix=path.stem.lstrip(".") or "photo", studio_home=studio_home,
        )  # fmt: skip
    return history(real_root, studio_home=studio_home)[-1]
