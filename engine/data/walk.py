"""Walking a dataset folder: which files are candidates, and which trees are no dataset at all.

Only directory entries are read here; no file is opened except to sniff the
first bytes of a few files (`PROBE_FILES`) of the first class folders.

- Files at the top level (LICENSE.txt) are ignored quietly, as are hidden
  and system entries (dot-files, `Thumbs.db`, `desktop.ini`, `__MACOSX`,
  `@eaDir`).
- A top-level `unsorted/` folder (any case) holds photos that are not
  sorted yet: it is not a class. `walk_unsorted` lists its photos for
  "label these next" (`engine.train.review.label_next`).
- Symbolic links are never followed out of the root: a linked file whose
  target lies outside, and any linked folder, is skipped and listed.
- Named pipes, sockets and devices are skipped and listed from their
  directory entry's type, never opened (opening a FIFO blocks forever).
- A folder that cannot be a dataset is refused early, before any file is
  checked: more than `engine.core.limits.MAX_DATASET_FILES` entries,
  folders more than `MAX_FOLDER_DEPTH` levels inside a class folder, or no
  image among the first files of its first `PROBE_FOLDERS` class folders
  (so `/` or a home folder answers in seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.core.errors import ImageError, StudioError
from engine.core.limits import MAX_DATASET_FILES
from engine.data.dataset import Problem
from engine.data.imagefiles import SNIFF_BYTES, open_image_file, sniff_image_format, special_file_reason

# Photos not sorted into a class yet: never a class, in any scan, split or training.
UNSORTED_FOLDER = "unsorted"
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "@eadir", "$recycle.bin"})
# Photos sorted by year/month/day/event sit 4 folders inside their class;
# a source tree or a home folder goes far deeper.
MAX_FOLDER_DEPTH = 6
# The first class folders (with files) must show an image among their first
# files, or the folder is refused before the rest is walked.
PROBE_FOLDERS = 3
PROBE_FILES = 50
DATASET_SHAPE = (
    "a dataset folder holds one sub-folder per class with the photos inside "
    "(e.g. photos/daisy/1.jpg, photos/roses/2.jpg); choose that folder"
)


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def is_unsorted_folder(name: str) -> bool:
    """Whether a top-level folder name is the not-a-class folder of unsorted photos (`UNSORTED_FOLDER`)."""
    return name.lower() == UNSORTED_FOLDER


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


class _Walk:
    """Counts the entries a scan visits and refuses a tree that cannot be a dataset."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.limit = MAX_DATASET_FILES.value()
        self.entries = 0
        self.probed: list[str] = []  # class folders whose first files held no image
        self.confirmed = False

    def visit(self) -> None:
        self.entries += 1
        if self.entries > self.limit:
            raise self.refuse(
                f"it holds more than {self.limit:,} files and folders ({MAX_DATASET_FILES.env})"
            )

    def refuse(self, why: str) -> StudioError:
        return StudioError(f"{self.root} is not a dataset folder: {why}; {DATASET_SHAPE}")

    def probe(self, folder: Path, files: list[Path]) -> None:
        """Refuse the tree once `PROBE_FOLDERS` class folders in a row show no image."""
        if self.confirmed or not files:
            return
        if any(_looks_like_image(path) for path in files[:PROBE_FILES]):
            self.confirmed = True
            return
        self.probed.append(folder.name)
        if len(self.probed) >= PROBE_FOLDERS:
            names = ", ".join(repr(n) for n in self.probed)
            raise self.refuse(f"no image among the first files of its first class folders ({names})")


def _looks_like_image(path: Path) -> bool:
    try:
        with open_image_file(path) as handle:
            return sniff_image_format(handle.read(SNIFF_BYTES)) is not None
    except (ImageError, OSError):
        return False


def _link_problem(root: Path, path: Path) -> Problem | None:
    """Why a symbolic link found in a class folder is skipped, or None to keep it."""
    rel = path.relative_to(root).as_posix()
    try:
        target = path.resolve()
        is_folder = target.is_dir()
    except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError on a loop
        return Problem(rel, "symlink", "broken link: it points to itself in a loop")
    if is_folder:
        return Problem(rel, "symlink", "linked folder not followed; copy its photos in instead")
    if not _inside(target, root):
        return Problem(
            rel, "symlink", "link to a file outside the dataset folder; copy the file in instead"
        )
    try:
        reason = special_file_reason(os.stat(path).st_mode)
    except OSError:
        return Problem(rel, "symlink", "broken link: its target does not exist")
    return None if reason is None else Problem(rel, "special_file", reason)


def _walk_class(root: Path, folder: Path, problems: list[Problem], walk: _Walk) -> list[Path]:
    """Every candidate file under one class folder (depth first, sorted), links kept inside `root`.

    Only the directory entries are read (no file is opened); a pipe, socket
    or device is listed as a problem from its entry's type.
    """
    found: list[Path] = []
    stack = [(folder, 0)]
    while stack:
        here, depth = stack.pop()
        try:
            with os.scandir(here) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            rel = here.relative_to(root).as_posix()
            problems.append(
                Problem(rel, "unreadable", f"folder cannot be listed ({exc.strerror or exc})")
            )
            continue
        subfolders: list[Path] = []
        for entry in entries:
            if _is_ignored(entry.name):
                continue
            walk.visit()
            path = Path(entry.path)
            try:
                if entry.is_symlink():
                    problem = _link_problem(root, path)
                    if problem is None:
                        found.append(path)
                    else:
                        problems.append(problem)
                elif entry.is_dir(follow_symlinks=False):
                    if depth >= MAX_FOLDER_DEPTH:
                        rel = path.relative_to(root).as_posix()
                        raise walk.refuse(
                            f"{rel!r} lies more than {MAX_FOLDER_DEPTH} folders deep inside its "
                            "class folder"
                        )
                    subfolders.append(path)
                elif entry.is_file(follow_symlinks=False):
                    found.append(path)
                else:
                    reason = special_file_reason(entry.stat(follow_symlinks=False).st_mode)
                    problems.append(
                        Problem(path.relative_to(root).as_posix(), "special_file", str(reason))
                    )
            except OSError as exc:  # vanished or unreadable between listing and looking
                rel = path.relative_to(root).as_posix()
                problems.append(Problem(rel, "unreadable", f"cannot read ({exc.strerror or exc})"))
        stack.extend((sub, depth + 1) for sub in reversed(subfolders))
    return found


def walk_dataset(root: Path, problems: list[Problem]) -> tuple[list[Path], dict[str, list[Path]]]:
    """The class folders of `root` and every candidate file in each, refusing non-datasets early.

    Args:
        root: the dataset folder, resolved.
        problems: skipped entries (links, pipes, unreadable folders) are
            appended here.

    Returns:
        The class folders (sorted by name) and, per folder name, its candidate
        files (depth first, sorted).

    Raises:
        StudioError: `root` cannot be listed, or it is not a dataset folder
            (too many entries, too deep, no image in its first class
            folders); the message says what a dataset folder looks like.
    """
    class_folders: list[Path] = []
    walk = _Walk(root)
    try:
        with os.scandir(root) as listing:
            top = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        raise StudioError(
            f"image_dir {str(root)!r} cannot be listed ({exc.strerror or exc}); check its permissions"
        ) from None
    for entry in top:
        if _is_ignored(entry.name):
            continue
        walk.visit()
        if entry.is_symlink() and entry.is_dir():
            problems.append(
                Problem(entry.name, "symlink", "linked class folder not followed; copy it in instead")
            )
        elif entry.is_dir(follow_symlinks=False) and not is_unsorted_folder(entry.name):
            class_folders.append(Path(entry.path))
        # top-level files such as LICENSE.txt are not classes

    files_by_folder: dict[str, list[Path]] = {}
    for folder in class_folders:
        files_by_folder[folder.name] = _walk_class(root, folder, problems, walk)
        walk.probe(folder, files_by_folder[folder.name])
    return class_folders, files_by_folder


def walk_unsorted(folder: Path, problems: list[Problem], *, root: Path | None = None) -> list[Path]:
    """Every candidate file under a folder of unsorted photos, with the class walk's rules.

    Args:
        folder: the folder (resolved), e.g. `<dataset>/unsorted`.
        problems: skipped entries are appended here, relative to `root`.
        root: what paths are relative to, and where links must stay. Defaults to `folder`.

    Returns:
        The files, depth first and sorted; [] when `folder` is missing.

    Raises:
        StudioError: the folder holds too many entries or lies too deep (as for a class).
    """
    if not folder.is_dir():
        return []
    return _walk_class(root or folder, folder, problems, _Walk(root or folder))
