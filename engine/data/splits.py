"""Labels and the stable train / validation / test split, as retrain.py made them.

A label is a folder name normalised (`normalize_label`); a photo's split comes
from a hash of its file name (`split_bucket`), so adding photos never moves
old ones between sets, and `assign_splits` guarantees every set at least one
photo per class when the class is big enough.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable

from engine.core.errors import StudioError

# retrain.py's constant: the hash is folded into this many buckets.
MAX_NUM_IMAGES_PER_CLASS = 2**27 - 1
SPLITS = ("train", "validation", "test")

_NOHASH = re.compile(r"_nohash_.*$")
# Unicode-aware: letters and digits of any script survive (retrain.py kept only
# a-z0-9, which turned "café" into "caf" and a Chinese folder name into "").
_LABEL_JUNK = re.compile(r"[\W_]+")


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


def split_key(file_name: str) -> str:
    """What retrain.py hashes to place a file in a split: its base name up to `_nohash_`."""
    return _NOHASH.sub("", os.path.basename(file_name))


def same_split_name(key: str, tag: str, suffix: str) -> str:
    """A file name whose `split_key` is `key`, so it falls in the same split: `<key>_nohash_<tag><suffix>`."""
    return f"{key}_nohash_{tag}{suffix}"


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
    base = split_key(file_name)
    digest = hashlib.sha1(base.encode("utf-8")).hexdigest()
    return (int(digest, 16) % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)


def _natural_split(bucket: float, validation_percentage: float, testing_percentage: float) -> str:
    if bucket < validation_percentage:
        return "validation"
    if bucket < validation_percentage + testing_percentage:
        return "test"
    return "train"


def check_percentages(validation_percentage: float, testing_percentage: float) -> None:
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
    check_percentages(validation_percentage, testing_percentage)
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
