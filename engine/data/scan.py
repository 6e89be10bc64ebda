"""Datasets: a folder of photos, one sub-folder per class, scanned, checked and split.

`scan_dataset(root)` walks the tree and returns a `Dataset`: the classes and
their labels, every usable image with its content hash and its split, and
everything that was skipped or looks wrong, each with a reason. The scan never
aborts on a bad file.

Layout rules:
- A class is a top-level sub-folder; deeper sub-folders belong to their
  top-level class. Which files are candidates, and which trees are refused
  before any file is read, is `engine.data.walk`'s job.
- A label is the folder name normalised as retrain.py does: lower-case, every
  run of characters other than a-z and 0-9 becomes one space; we also strip the
  ends ("Red_Roses " -> "red roses"). Two folders with the same label are an error.

The split follows retrain.py (see `split_bucket` and `assign_splits`), so
adding photos never moves old ones between sets.
"""

from __future__ import annotations

import hashlib
import os
import statistics
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.core.errors import ImageError, StudioError
from engine.core.limits import MAX_IMAGE_BYTES
from engine.core.progress import ProgressCallback, ProgressTracker
from engine.data import scan_cache
from engine.data.dataset import ClassInfo, Dataset, Duplicate, ImageRecord, Problem
from engine.data.images import check_image
from engine.data.splits import assign_splits, check_percentages, normalize_label
from engine.data.walk import walk_dataset

MIN_CLASSES = 2
# retrain.py warned below 20 images per class; so do we.
FEW_IMAGES_WARNING = 20
# Smallest class that can give one image to each of train, validation and test.
MIN_IMAGES_FOR_SPLIT = 3
# Largest-to-smallest class ratio from which imbalance is worth a warning.
IMBALANCE_RATIO = 3.0


_KIND_BY_REASON = (
    ("not a regular file", "special_file"),
    ("too large", "too_large"),
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


def _check_one(path: Path, max_bytes: int) -> list[Any]:
    """A cache entry's result part: ["ok", sha, w, h, fmt, size] or ["bad", kind, reason]."""
    try:
        checked = check_image(path, max_bytes=max_bytes)
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
    check_percentages(validation_percentage, testing_percentage)
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
    max_bytes = MAX_IMAGE_BYTES.value()
    class_folders, files_by_folder = walk_dataset(root_path, problems)
    all_files = [p for files in files_by_folder.values() for p in files]

    cache = scan_cache.load(root_path) if use_cache else {}
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
                todo, pool.map(lambda t: _check_one(t[0], max_bytes), todo), strict=True
            ):
                results[path] = result
                if result[:2] != ["bad", "too_large"]:  # depends on the cap, which may be raised
                    new_cache[rel] = [size, mtime, result]
                tracker.advance(cached=hits)
    if tracker.total <= 0 or tracker.done < tracker.total:  # else already reported
        tracker.finish()
    if use_cache and (todo or set(new_cache) != set(cache)):
        scan_cache.save(root_path, new_cache)

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
