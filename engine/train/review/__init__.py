"""The data loop's review: label issues, near-duplicates, split leaks and outliers (issue 12)."""

from engine.train.review.report import (
    CSV_COLUMNS,
    KINDS,
    Finding,
    Review,
    fix_leaks,
    leak_renames,
    review_dataset,
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
