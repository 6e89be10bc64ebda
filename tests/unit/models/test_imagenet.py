"""engine.models.imagenet: the 1000 ImageNet classes in the classifiers' output order."""

from __future__ import annotations

from engine.models.imagenet import imagenet_labels, imagenet_synsets


def test_imagenet_labels_are_the_1000_classes_in_output_order() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert (labels[0], labels[985], labels[698]) == ("tench", "daisy", "palace")
    assert imagenet_synsets()[985] == "n11939491"
