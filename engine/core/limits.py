"""Limits on what the studio reads and stores, each overridable by an environment variable.

| limit | variable | default | bounds |
| --- | --- | --- | --- |
| `MAX_IMAGE_BYTES` | `RETRAIN_STUDIO_MAX_IMAGE_BYTES` | 256 MiB | one image file: a larger one is skipped unread |
| `MAX_DATASET_FILES` | `RETRAIN_STUDIO_MAX_DATASET_FILES` | 500,000 | files and folders a dataset folder may hold |
| `IMPORT_QUOTA_BYTES` | `RETRAIN_STUDIO_IMPORT_QUOTA_BYTES` | 20 GiB | all imported datasets together |

Predict's photo limits (`PREDICT_PHOTO_MB`, `MAX_PREDICT_PHOTOS`) are plain
constants, shared by the Predict page (`ui.limits`) and the HTTP service
(`engine.serve.server`), so an upload is refused alike in both.

`Limit.value()` reads the variable each time, so a test or a long-lived app
picks up a change. A value that is not a positive whole number is a
`StudioError` that names the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.core.errors import StudioError


@dataclass(frozen=True)
class Limit:
    """One limit: the environment variable that sets it and its default.

    Args:
        env: the environment variable's name.
        default: the value when the variable is unset or blank.
    """

    env: str
    default: int

    def value(self) -> int:
        """The limit now: the variable's value, or `default` when it is unset or blank.

        Returns:
            A positive whole number ("_" separators allowed, as in 1_000_000).

        Raises:
            StudioError: the variable is set to anything else.
        """
        raw = os.environ.get(self.env, "").strip().replace("_", "")
        if not raw:
            return self.default
        value = int(raw) if raw.isdigit() else 0
        if value <= 0:
            raise StudioError(
                f"{self.env}={os.environ[self.env]!r} is not a positive whole number; unset it for "
                f"the default ({self.default:,}) or give a number such as {self.default * 2}"
            )
        return value


# A camera JPEG is under 30 MB and a 64-megapixel 16-bit TIFF under 400 MB
# uncompressed (rare; LZW roughly halves it): 256 MiB passes every photo a
# phone or a DSLR writes while refusing, unread, a disk image or a video that
# landed in a class folder.
MAX_IMAGE_BYTES = Limit("RETRAIN_STUDIO_MAX_IMAGE_BYTES", 256 * 1024**2)
# flower_photos holds 3,670 photos and a 1,000-class dataset a few 10,000s;
# a home folder or `/` holds millions.
MAX_DATASET_FILES = Limit("RETRAIN_STUDIO_MAX_DATASET_FILES", 500_000)
# Five imports at the largest zip size (4 GiB) each.
IMPORT_QUOTA_BYTES = Limit("RETRAIN_STUDIO_IMPORT_QUOTA_BYTES", 20 * 1024**3)

# Predict (the page and `python -m engine serve`): a 64-megapixel JPEG
# (engine.data.images.MAX_PIXELS) is well under 25 MB; 50 photos at once.
PREDICT_PHOTO_MB = 25
MAX_PREDICT_PHOTOS = 50
