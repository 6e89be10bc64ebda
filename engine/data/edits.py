"""Writable datasets: move a photo to another class, set it aside, add new photos, undo.

Every change is one *edit* in the dataset's journal,
`<studio home>/edits/<dataset key>/journal.jsonl` (JSON lines,
`engine.core.jsonlines`), and is made in three steps so a crash at any point
loses nothing:

1. an `intent` line lists every file move the edit will make (`from` -> `to`);
2. the files are moved (a rename; across file systems a copy that is renamed
   into place, then the original removed);
3. a `done` line records the moves that were made.

Whoever opens the journal next (`history`, any edit, `reconcile`) finishes an
edit that has an intent but no `done` line: each move is looked up on disk and
completed (rolled forward), and a `done` line is written. So a photo is always
in exactly one place, and the journal always says where.

Set-aside photos go to `<studio home>/quarantine/<dataset key>/<edit id>/<class>/`,
never deleted; undoing an added photo sets it aside the same way. A *keep*
(the photo was reviewed and is fine) moves nothing: it is remembered in the
journal so the review stops showing it (`kept`).

Who may change what: a dataset the studio made (the demo, an import, a
download: `engine.data.library.read_manifest` finds its manifest) is the
studio's own; a user's own folder is changed only after `allow_edits` was
called for it (the Dataset page's opt-in). No edit touches anything outside
the dataset root and the studio home; links are never followed or moved.

How the journal is kept and recovered: `engine.data.edit_journal`.

Public API (issue 13's live camera saves frames with `add_photos`):
`add_photos`, `move_to_class`, `rename`, `set_aside`, `keep`, `undo`,
`history`, `kept`, `reconcile`, `allow_edits`, `edits_allowed`,
`check_class_name`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.core.errors import ImageError, StudioError
from engine.core.fsutil import atomic_write_json, file_lock, read_json_dict
from engine.data import library
from engine.data.edit_journal import (
    Edit,
    Journal,
    edits_dir,
    free_name,
    journal_file,
    new_id,
    quarantine_dir,
)
from engine.data.imagefiles import NOT_AN_IMAGE, sniff_image_format

__all__ = [
    "IMAGE_SUFFIXES",
    "Edit",
    "EditsNotAllowed",
    "add_photos",
    "allow_edits",
    "check_class_name",
    "edits_allowed",
    "edits_dir",
    "history",
    "is_studio_dataset",
    "journal_file",
    "keep",
    "kept",
    "move_to_class",
    "quarantine_dir",
    "reconcile",
    "rename",
    "set_aside",
    "undo",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
_BAD_NAME = re.compile(r"[/\\\x00-\x1f]")
_OPT_IN = "allow-edits.json"

# Called after each file is moved and before the journal records it; tests set it to
# kill the process at exactly that point.


class EditsNotAllowed(StudioError):
    """The dataset is a user's own folder and changing it was not allowed (`allow_edits`)."""


def is_studio_dataset(root: str | os.PathLike[str]) -> bool:
    """Whether the studio made this folder (demo, import, download): it may change it freely."""
    return library.read_manifest(root) is not None


def allow_edits(
    root: str | os.PathLike[str],
    allowed: bool = True,
    *,
    studio_home: str | os.PathLike[str] | None = None,
) -> None:
    """Record the user's choice to let the studio move files in their own folder `root`.

    Args:
        root: the dataset folder.
        allowed: True to allow, False to take it back. Defaults to True.
        studio_home: the studio's home. Defaults to `engine.core.paths.home_dir()`.
    """
    real = _root(root)
    target = edits_dir(real, studio_home=studio_home) / _OPT_IN
    if allowed:
        atomic_write_json(target, {"root": str(real), "allowed": True})
    else:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def edits_allowed(
    root: str | os.PathLike[str], *, studio_home: str | os.PathLike[str] | None = None
) -> bool:
    """Whether the studio may change `root`: it made it, or the user allowed it (`allow_edits`)."""
    real = Path(root).expanduser().resolve()
    if is_studio_dataset(real):
        return True
    choice = read_json_dict(edits_dir(real, studio_home=studio_home) / _OPT_IN)
    return choice.get("allowed") is True and choice.get("root") == str(real)


def check_class_name(name: str) -> str:
    """Return `name` if it can be a class folder's name, else raise.

    Raises:
        StudioError: empty, hidden (starts with "."), "..", too long, or holding a
            path separator or a control character.
    """
    if (
        not isinstance(name, str)
        or not name.strip()
        or name.startswith(".")
        or _BAD_NAME.search(name)
        or len(name.encode("utf-8")) > 200
    ):
        raise StudioError(
            f"class name {name!r} cannot be a folder name: use letters, digits, spaces, '-' or '_' "
            "(not empty, not starting with '.', no '/' or '\\')"
        )
    return name


def _root(root: str | os.PathLike[str]) -> Path:
    real = Path(root).expanduser().resolve()
    if not real.is_dir():
        raise StudioError(
            f"{root} is not a folder: choose the dataset folder (one sub-folder per class)"
        )
    return real


def _photo(root: Path, given: str | os.PathLike[str]) -> Path:
    """The photo `given` (relative to `root`, or absolute) checked to be a regular file in a class folder."""
    candidate = Path(given)
    path = candidate if candidate.is_absolute() else root / candidate
    path = path.parent.resolve() / path.name
    if not path.is_relative_to(root) or len(path.relative_to(root).parts) < 2:
        raise StudioError(
            f"{given} is not a photo inside a class folder of {root.name}: choose one listed by the scan"
        )
    if path.is_symlink() or not path.is_file():
        raise StudioError(f"{given} is not a regular file (a link or missing): it was not moved")
    return path


@contextlib.contextmanager
def _open(
    root: str | os.PathLike[str], studio_home: str | os.PathLike[str] | None, *, writing: bool
) -> Iterator[Journal]:
    real = _root(root)
    if writing and not edits_allowed(real, studio_home=studio_home):
        raise EditsNotAllowed(
            f"{real.name} is your own folder: the studio changes it only after you allow it "
            "(tick 'Let the studio move files in this folder' on the Dataset page, or call allow_edits)"
        )
    journal = Journal(real, studio_home)
    journal.folder.mkdir(parents=True, exist_ok=True)
    with file_lock(journal.folder / "journal.lock"):
        journal.reconcile()
        yield journal


def reconcile(
    root: str | os.PathLike[str], *, studio_home: str | os.PathLike[str] | None = None
) -> list[str]:
    """Finish edits a crash interrupted (done on every open too); return their ids."""
    real = _root(root)
    journal = Journal(real, studio_home)
    if not journal.file.exists():
        return []
    with file_lock(journal.folder / "journal.lock"):
        return journal.reconcile()


def history(
    root: str | os.PathLike[str], *, studio_home: str | os.PathLike[str] | None = None
) -> list[Edit]:
    """Every edit made to `root`, oldest first (interrupted ones finished first)."""
    real = _root(root)
    if not journal_file(real, studio_home=studio_home).exists():
        return []
    with _open(real, studio_home, writing=False) as journal:
        return journal.edits()


def kept(root: str | os.PathLike[str], *, studio_home: str | os.PathLike[str] | None = None) -> set[str]:
    """The photos (relative to `root`) marked as reviewed and fine, whose keep was not undone."""
    return {
        p
        for e in history(root, studio_home=studio_home)
        if e.op == "keep" and not e.undone_by
        for p in e.paths
    }


def move_to_class(
    root: str | os.PathLike[str],
    photos: Sequence[str | os.PathLike[str]],
    class_name: str,
    *,
    studio_home: str | os.PathLike[str] | None = None,
) -> Edit:
    """Move photos into the class folder `class_name` (created if new), keeping their names.

    A name already taken there becomes `stem_nohash_N.ext`, which keeps the
    photo's split (retrain.py hashes the name up to `_nohash_`).

    Args:
        root: the dataset folder.
        photos: the photos, relative to `root` (as the scan lists them) or absolute.
        class_name: the target class folder's name.
        studio_home: the studio's home. Defaults to `engine.core.paths.home_dir()`.

    Returns:
        The edit (its `id` is what `undo` takes).

    Raises:
        EditsNotAllowed: `root` is a user's own folder not opted in.
        StudioError: a photo is not a regular file in a class folder of `root`,
            or `class_name` cannot be a folder name.
    """
    check_class_name(class_name)
    with _open(root, studio_home, writing=True) as journal:
        folder = journal.root / class_name
        taken: set[Path] = set()
        moves: list[tuple[Path | None, Path]] = []
        for given in photos:
            src = _photo(journal.root, given)
            if src.parent == folder:
                continue
            moves.append((src, free_name(folder, src.name, taken)))
        return journal.run("move", moves)


def rename(
    root: str | os.PathLike[str],
    renames: Sequence[tuple[str | os.PathLike[str], str]],
    *,
    studio_home: str | os.PathLike[str] | None = None,
) -> Edit:
    """Give photos new names in their own folders (a split leak is fixed this way: see `engine.train.review`).

    Args:
        root: the dataset folder.
        renames: (photo, new file name) pairs; a taken name gets `_nohash_N`.
        studio_home: the studio's home. Defaults to `engine.core.paths.home_dir()`.

    Returns:
        The edit (op "move").
    """
    with _open(root, studio_home, writing=True) as journal:
        taken: set[Path] = set()
        moves: list[tuple[Path | None, Path]] = []
        for given, new_name in renames:
            src = _photo(journal.root, given)
            if _BAD_NAME.search(new_name) or new_name.startswith(".") or not new_name.strip():
                raise StudioError(f"new name {new_name!r} is not a plain, visible file name")
            if new_name != src.name:
                moves.append((src, free_name(src.parent, new_name, taken)))
        return journal.run("move", moves)


def set_aside(
    root: str | os.PathLike[str],
    photos: Sequence[str | os.PathLike[str]],
    *,
    studio_home: str | os.PathLike[str] | None = None,
) -> Edit:
    """Move photos out of the dataset into its quarantine folder in the studio home (never deleted).

    Returns:
        The edit; the photos are in `quarantine_dir(root)/<edit id>/<class>/`.
    """
    with _open(root, studio_home, writing=True) as journal:
        sources = [_photo(journal.root, given) for given in photos]
        return _set_aside(journal, sources, "set_aside")


def _set_aside(journal: Journal, sources: list[Path], op: str, **extra: Any) -> Edit:
    batch = journal.quarantine / new_id()
    taken: set[Path] = set()
    moves: list[tuple[Path | None, Path]] = [
        (src, free_name(batch / src.parent.name, src.name, taken)) for src in sources
    ]
    return journal.run(op, moves, **extra)


def add_photos(
    dataset_root: str | os.PathLike[str],
    class_name: str,
    images: Sequence[bytes],
    *,
    suffix: str = ".jpg",
    name_prefix: str = "photo",
    studio_home: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Add new photos (encoded image bytes) to a class, creating the class folder if new.

    Each photo is written atomically under a new unique name
    (`<prefix>-<UTC time>-<random>.<suffix>`), in one journaled edit, so
    `undo` sets them aside again.

    Args:
        dataset_root: the dataset folder.
        class_name: the class folder's name (created if missing).
        images: the encoded images (JPEG, PNG, ... bytes); each is checked to be an image.
        suffix: the files' extension, one of `IMAGE_SUFFIXES`. Defaults to ".jpg".
        name_prefix: the start of each new name. Defaults to "photo".
        studio_home: the studio's home. Defaults to `engine.core.paths.home_dir()`.

    Returns:
        The new files' paths, in the order of `images`.

    Raises:
        EditsNotAllowed: `dataset_root` is a user's own folder not opted in.
        ImageError: one of `images` is not an image (nothing is written then).
        StudioError: a bad class name, suffix or prefix.
    """
    check_class_name(class_name)
    if suffix.lower() not in IMAGE_SUFFIXES:
        raise StudioError(
            f"suffix {suffix!r} is not an image extension: use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    if _BAD_NAME.search(name_prefix) or name_prefix.startswith("."):
        raise StudioError(f"name_prefix {name_prefix!r} must be a plain, visible file name start")
    for n, data in enumerate(images):
        if not isinstance(data, bytes | bytearray) or sniff_image_format(bytes(data[:16])) is None:
            raise ImageError(NOT_AN_IMAGE, f"image {n + 1} of {len(images)}")
    with _open(dataset_root, studio_home, writing=True) as journal:
        folder = journal.root / class_name
        stamp = f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
        taken: set[Path] = set()
        targets = [
            free_name(folder, f"{name_prefix}-{stamp}-{uuid.uuid4().hex[:8]}{suffix}", taken)
            for _ in images
        ]
        journal.run(
            "add", [(None, t) for t in targets], dict(zip(targets, map(bytes, images), strict=True))
        )
        return targets


def keep(
    root: str | os.PathLike[str],
    photos: Sequence[str | os.PathLike[str]],
    *,
    studio_home: str | os.PathLike[str] | None = None,
) -> Edit:
    """Remember that photos were reviewed and are fine (the review stops showing them); moves nothing."""
    with _open(root, studio_home, writing=False) as journal:
        rels = sorted({_photo(journal.root, p).relative_to(journal.root).as_posix() for p in photos})
        return journal.run("keep", [], paths=rels)


def undo(
    root: str | os.PathLike[str],
    edit_id: str | None = None,
    *,
    studio_home: str | os.PathLike[str] | None = None,
) -> Edit:
    """Revert an edit: every photo goes back where it was (an added photo is set aside).

    Args:
        root: the dataset folder.
        edit_id: the edit to undo. Defaults to the latest one not undone yet.
        studio_home: the studio's home. Defaults to `engine.core.paths.home_dir()`.

    Returns:
        The "undo" edit.

    Raises:
        StudioError: nothing to undo, an unknown id, an undo or an edit already
            undone, or a photo no longer where the edit put it (nothing is moved then).
    """
    with _open(root, studio_home, writing=True) as journal:
        edit, back, aside = journal.plan_undo(edit_id)
        if aside:
            return _set_aside(journal, aside, "undo", undoes=edit.id)
        return journal.run("undo", list(back), undoes=edit.id)
