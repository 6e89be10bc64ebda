"""The keras.applications networks: their weight files and how to build them.

Their ImageNet weights come from Keras' download site (base URL in
`RETRAIN_STUDIO_KERAS_WEIGHTS_URL`), or from a file already in
retrain.py's `--model_dir` (for one training), `cache_dir()/weights/` or the
Keras cache (`$KERAS_HOME/models`,
`~/.keras/models` by default). A `KerasApp` is one network's recipe; the
registry (`engine.models.registry`) pairs it with its `Backbone`.

TensorFlow and Keras are imported only inside the functions that build models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core import paths
from engine.core.errors import StudioError
from engine.core.fsutil import sha256_file

KERAS_WEIGHTS_URL_ENV = "RETRAIN_STUDIO_KERAS_WEIGHTS_URL"
KERAS_WEIGHTS_URL_DEFAULT = "https://storage.googleapis.com"
# The two ways a keras.applications network scales pixels (see `KerasApp.normalization`).
MINUS_ONE_ONE = "x / 127.5 - 1"


def keras_home() -> Path:
    """Keras' own cache folder (`$KERAS_HOME`, else `~/.keras`)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


@dataclass(frozen=True)
class KerasApp:
    """How to build one keras.applications network and find its weight files.

    Attributes:
        name: the backbone's registry name (names the built model).
        constructor: the `keras.applications` function.
        kwargs: extra constructor arguments, as pairs.
        folder: path of the weight files below the download base URL.
        notop: the feature-extractor file name; `{size}` is the input side.
        top: the classifier file name.
        normalization: how pixels are scaled before the network, in words
            (`MINUS_ONE_ONE`, or a note that the network rescales by itself).
        notop_hash: the feature file's MD5, checked on download. Defaults to None.
        top_hash: the classifier file's MD5. Defaults to None.
    """

    name: str
    constructor: str
    kwargs: tuple[tuple[str, Any], ...]
    folder: str
    notop: str
    top: str
    normalization: str
    notop_hash: str | None = None
    top_hash: str | None = None

    def _rel_path(self, size: int, *, top: bool) -> str:
        return f"{self.folder}/{(self.top if top else self.notop).format(size=size)}"

    def local_file(self, size: int, *, top: bool = False) -> Path | None:
        """The weights file when it is on this machine already, else None."""
        file_name = self._rel_path(size, top=top).rsplit("/", 1)[-1]
        for folder in (*paths.weights_dirs(), keras_home() / "models"):
            candidate = folder / file_name
            if candidate.is_file() and candidate.stat().st_size > 0:
                return candidate
        return None

    def available(self, size: int) -> bool:
        """Whether the feature weights at `size` need no download."""
        return self.local_file(size, top=False) is not None

    def hint(self, size: int, *, top: bool = False) -> str:
        """A sentence naming the exact weights file and the folders it may go in."""
        rel = self._rel_path(size, top=top)
        file_name = rel.rsplit("/", 1)[-1]
        return (
            f"put {file_name} (from {KERAS_WEIGHTS_URL_DEFAULT}/{rel}) in "
            f"{paths.weights_dirs()[0]} or {keras_home() / 'models'}"
        )

    def weights_file(self, size: int, *, top: bool = False) -> Path:
        """A local copy of the weights file, downloading it when it is missing.

        Raises:
            StudioError: the download failed (the message names the file to put in place).
        """
        local = self.local_file(size, top=top)
        if local is not None:
            return local
        import keras

        rel = self._rel_path(size, top=top)
        base = (os.environ.get(KERAS_WEIGHTS_URL_ENV) or KERAS_WEIGHTS_URL_DEFAULT).rstrip("/")
        file_name = rel.rsplit("/", 1)[-1]
        # Kept in --model_dir when one is given, else in Keras' own cache. Keras silently
        # switches to /tmp/.keras when the cache folder does not exist yet.
        keep = paths.model_dir() or keras_home() / "models"
        keep.mkdir(parents=True, exist_ok=True)
        try:
            fetched = keras.utils.get_file(
                file_name,
                f"{base}/{rel}",
                cache_dir=str(keep.parent),
                cache_subdir=keep.name,
                file_hash=self.top_hash if top else self.notop_hash,
            )
        except Exception as exc:  # any download failure gets the same advice
            raise StudioError(
                f"cannot download the ImageNet weights of {self.name} from {base}/{rel} "
                f"({type(exc).__name__}: {str(exc)[:200]}); {self.hint(size, top=top)}"
            ) from exc
        return Path(fetched)

    def key(self, size: int, *, top: bool = False) -> str:
        """What identifies the weights (a hash of the file), for caches built from them."""
        return sha256_file(self.weights_file(size, top=top))[:16]

    def build(self, size: int, *, top: bool, weights: str | None) -> Any:
        """The network with these weights; see `engine.models.registry.WeightsSpec.build`.

        Raises:
            StudioError: the weights cannot be had, or the file does not fit the network.
        """
        import keras
        from keras import layers

        weights_path = None if weights is None else str(self.weights_file(size, top=top))
        constructor = getattr(keras.applications, self.constructor)
        kwargs: dict[str, Any] = dict(self.kwargs)
        if top:
            kwargs["classifier_activation"] = "softmax"
        else:
            kwargs["pooling"] = "avg"
        try:
            base = constructor(
                input_shape=(size, size, 3), include_top=top, weights=weights_path, **kwargs
            )
        except (OSError, ValueError) as exc:
            raise StudioError(
                f"the weights file {weights_path} does not fit {self.name} ({str(exc)[:200]}); "
                f"replace it: {self.hint(size, top=top)}"
            ) from exc
        inputs = keras.Input((size, size, 3), dtype="uint8", name="image")
        if self.normalization == MINUS_ONE_ONE:
            x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inputs)
        else:
            # The network rescales by itself; only the dtype changes here.
            x = layers.Rescaling(1.0, name="to_float")(inputs)
        outputs = base(x, training=False)
        suffix = "imagenet" if top else "features"
        return keras.Model(inputs, outputs, name=f"{self.name}_{suffix}")
