"""Datasets: a folder of photos, one sub-folder per class, scanned, checked and split.

`scan_dataset(root)` walks the tree and returns a `Dataset`: the classes and
their labels, every usable image with its content hash and its split, and
everything that was skipped or looks wrong, each with a reason. The scan never
aborts on a bad file.

Layout rules:
- A class is a top-level sub-folder; deeper sub-folders belong to their
  top-level class. Files at the top level (LICENSE.txt) are ignored quietly, as
  are hidden and system entries (dot-files, `Thumbs.db`, `desktop.ini`,
  `__MACOSX`, `@eaDir`).
- A label is the folder name normalised as retrain.py does: lower-case, every
  run of characters other than a-z and 0-9 becomes one space; we also strip the
  ends ("Red_Roses " -> "red roses"). Two folders with the same label are an error.
- Symbolic links are never followed out of the root: a linked file whose
  target lies outside, and any linked folder, is skipped and listed.

The split follows retrain.py (see `split_bucket` and `assign_splits`), so
adding photos never moves old ones between sets.

Getting data in (`ensure_demo_dataset`, `resolve_local_folder`, `import_zip`,
`download_flower_photos`) lives in private modules and is re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import paths
from engine._dataset_import import (
    FLOWER_PHOTOS_SHA256,
    FLOWER_PHOTOS_URL,
    MAX_ZIP_BYTES,
    MAX_ZIP_FILES,
    download_flower_photos,
    import_zip,
    resolve_local_folder,
)
from engine._demo_data import DEMO_CLASSES, DEMO_IMAGES_PER_CLASS, ensure_demo_dataset
from engine.errors import ImageError, StudioError
from engine.fsutil import atomic_write_text
from engine.images import MIN_SIDE, check_image
from engine.progress import ProgressCallback, ProgressTracker

# retrain.py's constant: the hash is folded into this many buckets.
MAX_NUM_IMAGES_PER_CLASS = 2**27 - 1
SPLITS = ("train", "validation", "test")
MIN_CLASSES = 2
# retrain.py warned below 20 images per class; so do we.
FEW_IMAGES_WARNING = 20
# Smallest class that can give one image to each of train, validation and test.
MIN_IMAGES_FOR_SPLIT = 3
# Largest-to-smallest class ratio from which imbalance is worth a warning.
IMBALANCE_RATIO = 3.0
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "@eadir", "$recycle.bin"})
SCAN_CACHE_VERSION = 1
__all__ = [
    "DEMO_CLASSES",
    "DEMO_IMAGES_PER_CLASS",
    "FLOWER_PHOTOS_SHA256",
    "FLOWER_PHOTOS_URL",
    "MAX_ZIP_BYTES",
    "MAX_ZIP_FILES",
    "ClassInfo",
    "Dataset",
    "Duplicate",
    "ImageRecord",
    "Problem",
    "assign_splits",
    "download_flower_photos",
    "ensure_demo_dataset",
    "import_zip",
    "normalize_label",
    "resolve_local_folder",
    "scan_dataset",
    "split_bucket",
]
_NOHASH = re.compile(r"_nohash_.*$")
# Unicode-aware: letters and digits of any script survive (retrain.py kept only
# a-z0-9, which turned "café" into "caf" and a Chinese folder name into "").
_LABEL_JUNK = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class ClassInfo:
    """One class: its label, its folder and how its images are split.

    Args:
        label: the normalised label.
        folder: the top-level folder name as on disk.
        count: usable images.
        train: images in the training set.
        validation: images in the validation set.
        test: images in the test set.
    """

    label: str
    folder: str
    count: int
    train: int
    validation: int
    test: int


@dataclass(frozen=True)
class ImageRecord:
    """One usable image.

    Args:
        path: absolute path.
        rel_path: path relative to the dataset root, with "/" separators.
        label: its class label.
        folder: its top-level class folder name.
        sha256: hex SHA-256 of the file's bytes.
        width: displayed width (EXIF orientation applied).
        height: displayed height.
        format: the format found in the content ("JPEG", "PNG", ...).
        size_bytes: file size.
        split: "train", "validation" or "test".
    """

    path: Path
    rel_path: str
    label: str
    folder: str
    sha256: str
    width: int
    height: int
    format: str
    size_bytes: int
    split: str


@dataclass(frozen=True)
class Problem:
    """A file or folder that was skipped, and why.

    Args:
        rel_path: path relative to the dataset root.
        kind: a short machine-readable kind ("empty", "truncated", "not_image",
            "bomb", "too_small", "unsupported", "corrupt", "symlink", "unreadable").
        reason: a human reason.
    """

    rel_path: str
    kind: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """A group of files with identical bytes.

    Args:
        sha256: the shared content hash.
        rel_paths: the files, sorted.
        kind: "same_class" (harmless but wasteful), "label_conflict" (the same
            photo under two labels) or "split_leak" (the same photo in two
            splits of one class, which inflates validation/test accuracy).
    """

    sha256: str
    rel_paths: tuple[str, ...]
    kind: str


@dataclass
class Dataset:
    """The result of `scan_dataset`: classes, images, split and findings.

    Attributes:
        root: the dataset folder (resolved).
        labels: usable class labels in output order (sorted).
        classes: one `ClassInfo` per usable class, in label order.
        images: every usable image, sorted by label then path.
        problems: files skipped, with reasons.
        duplicates: groups of identical files.
        warnings: things worth a look that do not stop training.
        errors: things that stop training; empty when `trainable`.
        stats: image size, format and byte statistics.
        fingerprint: a hash of every usable file's path and content.
        validation_percentage: the percentage asked for validation.
        testing_percentage: the percentage asked for test.
    """

    root: Path
    labels: list[str]
    classes: list[ClassInfo]
    images: list[ImageRecord]
    problems: list[Problem]
    duplicates: list[Duplicate]
    warnings: list[str]
    errors: list[str]
    stats: dict[str, Any]
    fingerprint: str
    validation_percentage: float
    testing_percentage: float
    cache_hits: int = field(default=0, repr=False)

    @property
    def trainable(self) -> bool:
        """True when nothing stops training on this dataset."""
        return not self.errors

    def split(self, name: str) -> list[ImageRecord]:
        """The images of one split.

        Args:
            name: "train", "validation" or "test".

        Returns:
            The records of that split, in `images` order.

        Raises:
            ValueError: `name` is not a split name.
        """
        if name not in SPLITS:
            raise ValueError(f"split={name!r} is unknown; choose one of {list(SPLITS)}")
        return [r for r in self.images if r.split == name]

    def require_trainable(self) -> None:
        """Raise if the dataset cannot be trained on.

        Raises:
            StudioError: listing every error and how to fix it.
        """
        if self.errors:
            raise StudioError(
                f"the dataset in {self.root} cannot be trained on: " + "; ".join(self.errors)
            )

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for a run's config.json and the dashboard.

        Returns:
            A dict with the root, fingerprint, labels, per-class counts, split
            totals, percentages, statistics and the findings.
        """
        return {
            "root": str(self.root),
            "fingerprint": self.fingerprint,
            "labels": list(self.labels),
            "classes": [vars(c).copy() for c in self.classes],
            "image_count": len(self.images),
            "split_counts": {s: sum(1 for r in self.images if r.split == s) for s in SPLITS},
            "validation_percentage": self.validation_percentage,
            "testing_percentage": self.testing_percentage,
            "stats": self.stats,
            "problems": [vars(p).copy() for p in self.problems],
            "duplicates": [
                {"sha256": d.sha256, "rel_paths": list(d.rel_paths), "kind": d.kind}
                for d in self.duplicates
            ],
            "warnings": list(self.warnings),
            "errors": list(self.errors),
            "trainable": self.trainable,
        }


def normalize_label(folder: str) -> str:
    """A folder name as a label: retrain.py's rule, extended to every script.

    For ASCII names this is exactly retrain.py's label; letters and digits of
    other scripts are kept rather than dropped.

    Args:
        folder: the folder name.

    Returns:
        Lower-case, each run of characters that are neither letters nor digits
        (underscore included) replaced by one space, stripped; a folder with no
        letter or digit gives "".
    """
    return _LABEL_JUNK.sub(" ", folder.lower()).strip()


def split_bucket(file_name: str) -> float:
    """Where a file falls in [0, 100], retrain.py's stable hash of its name.

    Anything from `_nohash_` on is ignored, so `leaf1_nohash_a.jpg` and
    `leaf1_nohash_b.jpg` (photos of one subject) share a bucket. retrain.py
    hashed the path as globbed, which made the split depend on where the folder
    lived; we hash the base name only, so moving or importing a dataset keeps
    its split.

    Args:
        file_name: the file's name (a path is reduced to its base name).

    Returns:
        `(int(sha1(name), 16) % (2**27)) * (100 / (2**27 - 1))`.
    """
    base = _NOHASH.sub("", os.path.basename(file_name))
    digest = hashlib.sha1(base.encode("utf-8")).hexdigest()
    return (int(digest, 16) % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)


def _natural_split(bucket: float, validation_percentage: float, testing_percentage: float) -> str:
    if bucket < validation_percentage:
        return "validation"
    if bucket < validation_percentage + testing_percentage:
        return "test"
    return "train"


def _check_percentages(validation_percentage: float, testing_percentage: float) -> None:
    for name, value in (
        ("validation_percentage", validation_percentage),
        ("testing_percentage", testing_percentage),
    ):
        if not isinstance(value, int | float) or not 0 <= value < 100:
            raise StudioError(f"{name}={value!r} is out of range; use a number from 0 to 99")
    if validation_percentage + testing_percentage >= 100:
        raise StudioError(
            f"validation_percentage + testing_percentage = "
            f"{validation_percentage + testing_percentage} leaves nothing to train on; "
            "keep their sum under 100 (the default is 10 + 10)"
        )


def assign_splits(
    file_names: Iterable[str],
    *,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
) -> dict[str, str]:
    """Split one class's files into train, validation and test, stably.

    Each file's natural set comes from `split_bucket`: validation below
    `validation_percentage`, test below `validation_percentage +
    testing_percentage`, train above. Files sharing a name before `_nohash_`
    form a group that always stays together.

    Guarantee: when the class has at least 3 groups, every set whose
    percentage is above 0 gets at least one group. A set left empty receives
    one group, taken from the set that has the most groups (ties: train, then
    test, then validation) and chosen as the group whose bucket lies nearest
    the empty set's range (the lowest bucket when filling validation, the
    highest when filling train, and for test the lowest from train or the
    highest from validation). Only classes that would otherwise lack a set are
    touched, so for them (and only them) adding photos can move a file back
    to its natural set.

    Args:
        file_names: the class's file names (paths are reduced to base names).
        validation_percentage: share for validation, 0-99. Defaults to 10.
        testing_percentage: share for test, 0-99. Defaults to 10.

    Returns:
        A dict from each given name to "train", "validation" or "test".

    Raises:
        StudioError: the percentages are out of range or sum to 100 or more.
    """
    _check_percentages(validation_percentage, testing_percentage)
    names = list(file_names)
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        groups[_NOHASH.sub("", os.path.basename(name))].append(name)
    bucket = {key: split_bucket(key) for key in groups}
    members: dict[str, list[str]] = {s: [] for s in SPLITS}
    for key in sorted(groups, key=lambda k: (bucket[k], k)):
        members[_natural_split(bucket[key], validation_percentage, testing_percentage)].append(key)
    wanted = ["train"]
    if validation_percentage > 0:
        wanted.append("validation")
    if testing_percentage > 0:
        wanted.append("test")
    if len(groups) >= len(wanted):
        for target in ("validation", "test", "train"):
            if target not in wanted or members[target]:
                continue
            donors = [s for s in ("train", "test", "validation") if s != target]
            donor = max(donors, key=lambda s: (len(members[s]), -donors.index(s)))
            if len(members[donor]) < 2:
                continue
            order = members[donor]  # sorted by bucket
            take_lowest = target == "validation" or (target == "test" and donor == "train")
            moved = order.pop(0) if take_lowest else order.pop()
            members[target].append(moved)
            members[target].sort(key=lambda k: (bucket[k], k))
    result: dict[str, str] = {}
    for split, keys in members.items():
        for key in keys:
            for name in groups[key]:
                result[name] = split
    return result


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _walk_class(root: Path, folder: Path, problems: list[Problem]) -> list[Path]:
    """Every candidate file under one class folder, links kept inside `root`."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            if _is_ignored(name):
                continue
            sub = here / name
            if sub.is_symlink():
                problems.append(
                    Problem(
                        sub.relative_to(root).as_posix(),
                        "symlink",
                        "linked folder not followed; copy its photos in instead",
                    )
                )
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if _is_ignored(name):
                continue
            path = here / name
            if path.is_symlink():
                target = path.resolve()
                if not _inside(target, root) or not target.is_file():
                    problems.append(
                        Problem(
                            path.relative_to(root).as_posix(),
                            "symlink",
                            "link to a file outside the dataset folder; copy the file in instead",
                        )
                    )
                    continue
            found.append(path)
    return found


_KIND_BY_REASON = (
    ("empty", "empty"),
    ("decompression bomb", "bomb"),
    ("too small", "too_small"),
    ("truncated", "truncated"),
    ("not an image", "not_image"),
    ("unsupported format", "unsupported"),
    ("corrupt", "corrupt"),
)


def _kind(reason: str) -> str:
    for needle, kind in _KIND_BY_REASON:
        if needle in reason:
            return kind
    return "unreadable"


def _cache_file(root: Path) -> Path:
    key = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:20]
    return paths.cache_dir() / "scan" / f"{key}.json"


def _load_cache(path: Path, root: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if data.get("version") != SCAN_CACHE_VERSION or data.get("root") != str(root):
        return {}
    if data.get("min_side") != MIN_SIDE:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def _check_one(path: Path) -> list[Any]:
    """A cache entry's result part: ["ok", sha, w, h, fmt, size] or ["bad", kind, reason]."""
    try:
        checked = check_image(path)
    except ImageError as exc:
        return ["bad", _kind(exc.reason), exc.reason]
    info = checked.info
    return ["ok", checked.sha256, info.width, info.height, info.format, checked.size_bytes]


def _scan_workers() -> int:
    # Decoding and hashing release the GIL; a few threads per core keep the
    # disk and the decoder busy without oversubscribing a small machine.
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


def _stats(records: list[ImageRecord]) -> dict[str, Any]:
    if not records:
        return {"formats": {}, "width": {}, "height": {}, "bytes": {}}

    def describe(values: list[int]) -> dict[str, float]:
        return {
            "min": min(values),
            "median": statistics.median(values),
            "max": max(values),
            "mean": round(statistics.fmean(values), 1),
        }

    return {
        "formats": dict(sorted(Counter(r.format for r in records).items())),
        "width": describe([r.width for r in records]),
        "height": describe([r.height for r in records]),
        "bytes": describe([r.size_bytes for r in records]),
        "total_bytes": sum(r.size_bytes for r in records),
    }


def _find_duplicates(records: list[ImageRecord]) -> list[Duplicate]:
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_hash[record.sha256].append(record)
    found = []
    for sha, group in sorted(by_hash.items()):
        if len(group) < 2:
            continue
        if len({r.label for r in group}) > 1:
            kind = "label_conflict"
        elif len({r.split for r in group}) > 1:
            kind = "split_leak"
        else:
            kind = "same_class"
        found.append(Duplicate(sha, tuple(sorted(r.rel_path for r in group)), kind))
    return found


def scan_dataset(
    root: str | os.PathLike[str],
    *,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
    progress: ProgressCallback | None = None,
    use_cache: bool = True,
) -> Dataset:
    """Scan a folder-per-class tree: check every file, split, and report findings.

    Args:
        root: the dataset folder (one sub-folder per class).
        validation_percentage: share of each class for validation, 0-99.
            Defaults to 10.
        testing_percentage: share of each class for test, 0-99. Defaults to 10.
        progress: called with `Progress` snapshots (phase "scan", unit
            "images"; `detail["cached"]` counts files answered from the cache).
            Defaults to None.
        use_cache: reuse earlier results for files whose path, size and
            modification time are unchanged, and save this scan's results.
            Defaults to True.

    Returns:
        The `Dataset`. It is returned even when it cannot be trained on; see
        `Dataset.errors` and `Dataset.require_trainable()`.

    Raises:
        StudioError: `root` is missing or not a folder, or the percentages are
            out of range.
    """
    _check_percentages(validation_percentage, testing_percentage)
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise StudioError(f"image_dir {str(root)!r} does not exist; give a folder of class sub-folders")
    if not root_path.is_dir():
        raise StudioError(
            f"image_dir {str(root)!r} is a file, not a folder; give the folder containing it"
        )
    root_path = root_path.resolve()

    problems: list[Problem] = []
    errors: list[str] = []
    warnings: list[str] = []
    class_folders: list[Path] = []
    for entry in sorted(root_path.iterdir(), key=lambda p: p.name):
        if _is_ignored(entry.name) or not entry.is_dir():
            continue  # top-level files such as LICENSE.txt are not classes
        if entry.is_symlink():
            problems.append(
                Problem(entry.name, "symlink", "linked class folder not followed; copy it in instead")
            )
            continue
        class_folders.append(entry)

    files_by_folder = {f.name: _walk_class(root_path, f, problems) for f in class_folders}
    all_files = [p for files in files_by_folder.values() for p in files]

    cache_path = _cache_file(root_path)
    cache = _load_cache(cache_path, root_path) if use_cache else {}
    new_cache: dict[str, list[Any]] = {}
    results: dict[Path, list[Any]] = {}
    todo: list[tuple[Path, str, int, int]] = []
    tracker = ProgressTracker("scan", len(all_files), progress, unit="images")
    hits = 0
    for path in all_files:
        rel = path.relative_to(root_path).as_posix()
        try:
            st = path.stat()
        except OSError as exc:
            results[path] = ["bad", "unreadable", f"cannot read ({exc.strerror or exc})"]
            tracker.advance(cached=hits)
            continue
        cached = cache.get(rel)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            results[path] = cached[2]
            new_cache[rel] = cached
            hits += 1
            tracker.advance(cached=hits)
        else:
            todo.append((path, rel, st.st_size, st.st_mtime_ns))
    if todo:
        with ThreadPoolExecutor(max_workers=_scan_workers()) as pool:
            for (path, rel, size, mtime), result in zip(
                todo, pool.map(_check_one, (t[0] for t in todo)), strict=True
            ):
                results[path] = result
                new_cache[rel] = [size, mtime, result]
                tracker.advance(cached=hits)
    if tracker.total <= 0 or tracker.done < tracker.total:  # else already reported
        tracker.finish()
    if use_cache and (todo or set(new_cache) != set(cache)):
        payload = {
            "version": SCAN_CACHE_VERSION,
            "root": str(root_path),
            "min_side": MIN_SIDE,
            "entries": new_cache,
        }
        try:
            atomic_write_text(cache_path, json.dumps(payload, separators=(",", ":")))
        except OSError:
            pass  # a read-only cache only costs speed next time

    folders_by_label: dict[str, list[str]] = defaultdict(list)
    for folder in class_folders:
        folders_by_label[normalize_label(folder.name)].append(folder.name)
    if "" in folders_by_label:
        names = ", ".join(repr(n) for n in folders_by_label.pop(""))
        errors.append(
            f"folder {names} has no letters a-z or digits to make a label from; rename it "
            "(labels use a-z and 0-9)"
        )
    for label, names in sorted(folders_by_label.items()):
        if len(names) > 1:
            errors.append(
                f"folders {', '.join(repr(n) for n in names)} all give the label {label!r}; "
                "merge them or rename one"
            )

    records: list[ImageRecord] = []
    classes: list[ClassInfo] = []
    for label, names in sorted(folders_by_label.items()):
        class_files: list[tuple[Path, list[Any]]] = []
        for name in names:
            for path in files_by_folder[name]:
                result = results[path]
                rel = path.relative_to(root_path).as_posix()
                if result[0] == "bad":
                    problems.append(Problem(rel, result[1], result[2]))
                else:
                    class_files.append((path, result))
        if not class_files:
            warnings.append(
                f"class folder {names[0]!r} has no usable images and is left out; add photos "
                "or remove the folder"
            )
            continue
        rels = [p.relative_to(root_path).as_posix() for p, _ in class_files]
        splits = assign_splits(
            rels, validation_percentage=validation_percentage, testing_percentage=testing_percentage
        )
        for (path, result), rel in zip(class_files, rels, strict=True):
            _, sha, width, height, fmt, size = result
            records.append(
                ImageRecord(path, rel, label, names[0], sha, width, height, fmt, size, splits[rel])
            )
        counts = Counter(splits.values())
        info = ClassInfo(
            label, names[0], len(class_files), counts["train"], counts["validation"], counts["test"]
        )
        classes.append(info)
        if info.count < MIN_IMAGES_FOR_SPLIT:
            errors.append(
                f"class {label!r} has only {info.count} usable image(s); each class needs at "
                f"least {MIN_IMAGES_FOR_SPLIT} (one each for train, validation and test); add photos"
            )
        else:
            missing = [
                s
                for s, pct in (
                    ("train", 1),
                    ("validation", validation_percentage),
                    ("test", testing_percentage),
                )
                if pct > 0 and getattr(info, s) == 0
            ]
            if missing:
                errors.append(
                    f"class {label!r} has no {' or '.join(missing)} image: its photos share too few "
                    "names before '_nohash_'; add photos of other subjects"
                )
        if info.count < FEW_IMAGES_WARNING:
            warnings.append(
                f"class {label!r} has only {info.count} images; {FEW_IMAGES_WARNING} or more "
                "give more reliable results"
            )

    records.sort(key=lambda r: (r.label, r.rel_path))
    problems.sort(key=lambda p: p.rel_path)
    labels = [c.label for c in classes]
    if not class_folders:
        errors.append(
            f"no class folders in {root_path}; put each class's photos in its own sub-folder "
            "(e.g. photos/daisy/*.jpg, photos/roses/*.jpg)"
        )
    elif len(classes) < MIN_CLASSES:
        found = f"only {labels[0]!r}" if labels else "none"
        errors.append(
            f"training needs at least {MIN_CLASSES} classes with usable images; found {found}; "
            "add another sub-folder of photos"
        )
    if len(classes) >= 2:
        largest = max(classes, key=lambda c: c.count)
        smallest = min(classes, key=lambda c: c.count)
        if largest.count >= IMBALANCE_RATIO * smallest.count:
            warnings.append(
                f"classes are imbalanced: {largest.label!r} has {largest.count} images, "
                f"{smallest.label!r} only {smallest.count}; accuracy will favour the larger class"
            )
    duplicates = _find_duplicates(records)
    by_kind = Counter(d.kind for d in duplicates)
    if by_kind["label_conflict"]:
        warnings.append(
            f"{by_kind['label_conflict']} photo(s) appear under more than one label; keep each "
            "photo in one class"
        )
    if by_kind["split_leak"]:
        warnings.append(
            f"{by_kind['split_leak']} photo(s) appear in more than one split of a class, which "
            "inflates validation/test accuracy; delete the copies"
        )
    if by_kind["same_class"]:
        warnings.append(f"{by_kind['same_class']} photo(s) are duplicated within their class")
    if problems:
        warnings.append(f"{len(problems)} file(s) skipped; see the problems list")

    fingerprint = hashlib.sha256(
        "".join(f"{r.rel_path}\t{r.sha256}\n" for r in records).encode("utf-8")
    ).hexdigest()
    return Dataset(
        root=root_path,
        labels=labels,
        classes=classes,
        images=records,
        problems=problems,
        duplicates=duplicates,
        warnings=warnings,
        errors=errors,
        stats=_stats(records),
        fingerprint=fingerprint,
        validation_percentage=validation_percentage,
        testing_percentage=testing_percentage,
        cache_hits=hits,
    )
