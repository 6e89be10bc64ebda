"""Limits on what the studio reads and stores, each overridable by an environment variable.

| variable | default | bounds |
| --- | --- | --- |
| `RETRAIN_STUDIO_MAX_IMAGE_BYTES` | 256 MiB | one image file: a larger one is skipped unread |
| `RETRAIN_STUDIO_MAX_DATASET_FILES` | 500,000 | files and folders a dataset folder may hold |
| `RETRAIN_STUDIO_IMPORT_QUOTA_BYTES` | 20 GiB | all imported datasets together |

Each value is read when it is needed, so a test or a long-lived app picks up a
change. A value that is not a positive whole number is a `StudioError` that
names the variable.
"""

from __future__ import annotations

import os

from engine.core.errors import StudioError

MAX_IMAGE_BYTES_ENV = "RETRAIN_STUDIO_MAX_IMAGE_BYTES"
# A camera JPEG is under 30 MB and a 64-megapixel 16-bit TIFF under 400 MB
# uncompressed (rare; LZW roughly halves it): 256 MiB passes every photo a
# phone or a DSLR writes while refusing, unread, a disk image or a video that
# landed in a class folder.
DEFAULT_MAX_IMAGE_BYTES = 256 * 1024**2

MAX_DATASET_FILES_ENV = "RETRAIN_STUDIO_MAX_DATASET_FILES"
# flower_photos holds 3,670 photos and a 1,000-class dataset a few 10,000s;
# a home folder or `/` holds millions.
DEFAULT_MAX_DATASET_FILES = 500_000

IMPORT_QUOTA_ENV = "RETRAIN_STUDIO_IMPORT_QUOTA_BYTES"
# Five imports at the largest zip size (4 GiB) each.
DEFAULT_IMPORT_QUOTA_BYTES = 20 * 1024**3


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    value = int(raw) if raw.isdigit() else 0
    if value <= 0:
        raise StudioError(
            f"{name}={os.environ[name]!r} is not a positive whole number; unset it for the "
            f"default ({default:,}) or give a number such as {default * 2}"
        )
    return value


def max_image_bytes() -> int:
    """The largest image file the studio reads, in bytes (`RETRAIN_STUDIO_MAX_IMAGE_BYTES`).

    Returns:
        The limit. Defaults to `DEFAULT_MAX_IMAGE_BYTES` (256 MiB).

    Raises:
        StudioError: the variable is not a positive whole number.
    """
    return _positive_int(MAX_IMAGE_BYTES_ENV, DEFAULT_MAX_IMAGE_BYTES)


def max_dataset_files() -> int:
    """Most files and folders a dataset folder may hold (`RETRAIN_STUDIO_MAX_DATASET_FILES`).

    Returns:
        The limit. Defaults to `DEFAULT_MAX_DATASET_FILES` (500,000).

    Raises:
        StudioError: the variable is not a positive whole number.
    """
    return _positive_int(MAX_DATASET_FILES_ENV, DEFAULT_MAX_DATASET_FILES)


def import_quota_bytes() -> int:
    """Most bytes all imported datasets may take together (`RETRAIN_STUDIO_IMPORT_QUOTA_BYTES`).

    Returns:
        The quota. Defaults to `DEFAULT_IMPORT_QUOTA_BYTES` (20 GiB).

    Raises:
        StudioError: the variable is not a positive whole number.
    """
    return _positive_int(IMPORT_QUOTA_ENV, DEFAULT_IMPORT_QUOTA_BYTES)
