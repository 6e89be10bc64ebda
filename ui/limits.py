"""Upload limits, in one place: the zip importer's, Predict's, and the server's.

Streamlit keeps every uploaded file in the server's memory, so each limit is
checked twice: by the widget (`max_upload_size`, in the browser, before the
bytes are sent) and here on the server (a client can skip the widget).
`server.maxUploadSize` in .streamlit/config.toml, the cap on any single
upload, is the largest of them: the zip limit, which is the engine's
(`engine.data.sources.MAX_ZIP_BYTES`; tests/app/test_app_limits.py checks
that they match).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from engine.core.limits import MAX_PREDICT_PHOTOS, PREDICT_PHOTO_MB
from engine.data.sources import MAX_ZIP_BYTES

MIB = 1024**2
# A zip may be as large as what it unpacks to: the importer's own limit.
ZIP_UPLOAD_MB = math.ceil(MAX_ZIP_BYTES / MIB)
# Predict's limits are the engine's, so the HTTP service (`python -m engine serve`) refuses alike.
PHOTO_UPLOAD_MB = PREDICT_PHOTO_MB
__all__ = ["MAX_PREDICT_PHOTOS", "MIB", "PHOTO_UPLOAD_MB", "ZIP_UPLOAD_MB", "within_limits"]


def within_limits(uploads: Sequence[Any], *, max_count: int, max_mb: int) -> tuple[list[Any], list[str]]:
    """The uploads Predict takes, and a message for each one it leaves out.

    Photos over `max_mb` are skipped; of the rest, the first `max_count` are kept.

    Args:
        uploads: uploaded files (`name` and `size` in bytes).
        max_count: most photos predicted at once.
        max_mb: largest photo in MiB.

    Returns:
        `(kept, messages)`; the messages are plain text (names unescaped).
    """
    kept, messages = [], []
    for upload in uploads:
        if upload.size > max_mb * MIB:
            messages.append(
                f"{upload.name} is {upload.size / MIB:.1f} MB, over the {max_mb} MB limit for a "
                "photo; make it smaller (a photo need not be larger than a few MB)"
            )
        else:
            kept.append(upload)
    if len(kept) > max_count:
        messages.append(
            f"{len(kept)} photos uploaded; only the first {max_count} are predicted. "
            f"Remove some to predict the others"
        )
        kept = kept[:max_count]
    return kept, messages
