"""What a scanned dataset is: its classes, images, problems and duplicates.

`engine.data.scan.scan_dataset` builds a `Dataset`; training, the dashboard
and the CLI read it. Plain dataclasses, JSON-ready through `Dataset.summary()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import StudioError
from engine.data.splits import SPLITS


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
