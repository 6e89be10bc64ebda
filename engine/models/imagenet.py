"""The 1000 ImageNet classes, in the output order of the backbones' classifiers.

The names come from `assets/imagenet_classes.tsv` (source and licence in
`assets/README.md`).
"""

from __future__ import annotations

import functools
from pathlib import Path

CLASSES_FILE = Path(__file__).resolve().parent / "assets" / "imagenet_classes.tsv"


@functools.cache
def _imagenet_classes() -> tuple[tuple[str, str], ...]:
    rows = []
    for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines():
        synset, lemmas = line.split("\t", 1)
        rows.append((synset, lemmas))
    return tuple(rows)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in output order (the first WordNet lemma of each).

    Returns:
        1000 names, e.g. index 985 is "daisy".
    """
    return [lemmas.split(",")[0].strip() for _synset, lemmas in _imagenet_classes()]


def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet WordNet ids (`n01440764`, ...) in output order."""
    return [synset for synset, _lemmas in _imagenet_classes()]
