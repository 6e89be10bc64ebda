"""The data loop's review: label issues, near-duplicates, split leaks and outliers (issues 12, 19)."""

from engine.train.review.dataset import review_dataset
from engine.train.review.report import (
    CSV_COLUMNS,
    KINDS,
    Finding,
    Review,
    fix_leaks,
    leak_renames,
    review_features,
    write_csv,
)

__all__ = [
    "CSV_COLUMNS",
    "KINDS",
    "Finding",
    "Review",
    "fix_leaks",
    "leak_renames",
    "review_dataset",
    "review_features",
    "write_csv",
]
