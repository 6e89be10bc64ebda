"""Drawing the demo dataset's photos: five kinds of flower, procedurally, the same for a seed.

The classes differ by shape and structure while sharing one palette of petal
colours, backgrounds and lighting (see `engine.data.demo` for the table), so
average colour alone says little and a real image network has something to
learn. `render_demo_image` is the one entry point; `engine.data.demo` writes
the photos as a dataset.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEMO_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
DEMO_SEED = 20240611
DEMO_MIN_SIDE = 240
DEMO_MAX_SIDE = 500
_SUPERSAMPLE = 2
# One palette for every class: colour must not give the class away.
_PETAL_COLOURS = (
    (250, 250, 245),
    (250, 225, 60),
    (245, 150, 40),
    (215, 35, 45),
    (240, 130, 170),
    (200, 40, 140),
    (140, 70, 190),
    (250, 200, 200),
)
_CENTRE_COLOURS = ((240, 190, 30), (110, 70, 30), (60, 40, 25), (230, 140, 30), (150, 160, 60))
_BACKGROUNDS = (
    ((60, 110, 45), (110, 160, 70)),  # foliage
    ((120, 170, 225), (210, 230, 250)),  # sky
    ((110, 85, 60), (160, 130, 95)),  # soil
    ((120, 120, 120), (200, 200, 195)),  # wall
    ((40, 70, 35), (80, 130, 60)),  # shade
)
_GREENS = ((50, 120, 40), (80, 150, 50), (35, 95, 45))


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: int = 25) -> tuple:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _pick(rng: np.random.Generator, options: tuple) -> tuple:
    return options[int(rng.integers(len(options)))]


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    dark, light = _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))]
    if rng.random() < 0.5:
        t = np.linspace(0.0, 1.0, height)[:, None, None]
    else:
        t = np.linspace(0.0, 1.0, width)[None, :, None]
    grad = np.array(dark, np.float32) * (1 - t) + np.array(light, np.float32) * t
    pixels = np.broadcast_to(grad, (height, width, 3)).copy()
    # Soft blobs of other background colours: out-of-focus leaves and stones,
    # drawn at a quarter of the size since blur hides the detail anyway.
    q = 4
    small = (max(1, width // q), max(1, height // q))
    blobs = Image.new("RGB", small, (0, 0, 0))
    mask = Image.new("L", small, 0)
    draw_b, draw_m = ImageDraw.Draw(blobs), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(4, 14))):
        r = int(rng.integers(10, max(11, min(width, height) // 3))) / q
        x, y = rng.uniform(0, small[0]), rng.uniform(0, small[1])
        colour = _jitter(rng, _pick(rng, _pick(rng, _BACKGROUNDS)), 30)
        draw_b.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        draw_m.ellipse((x - r, y - r, x + r, y + r), fill=int(rng.integers(60, 200)))
    base = Image.fromarray(pixels.astype(np.uint8), "RGB")
    blobs = blobs.filter(ImageFilter.GaussianBlur(1.5)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    mask = mask.filter(ImageFilter.GaussianBlur(2)).resize((width, height), Image.Resampling.BILINEAR)
    return Image.composite(blobs, base, mask)


def _ellipse_petal(cx: float, cy: float, angle: float, r0: float, r1: float, half_w: float) -> list:
    """A petal from radius r0 to r1 along `angle`, as a polygon (rounded ends)."""
    points = []
    steps = 14
    for i in range(steps + 1):
        t = math.pi * i / steps
        along = r0 + (r1 - r0) * (1 - math.cos(t)) / 2
        across = half_w * math.sin(t)
        points.append((along, across))
    for i in range(steps, -1, -1):
        t = math.pi * i / steps
        along = r0 + (r1 - r0) * (1 - math.cos(t)) / 2
        points.append((along, -half_w * math.sin(t)))
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + a * ca - b * sa, cy + a * sa + b * ca) for a, b in points]


def _pointed_petal(cx: float, cy: float, angle: float, r0: float, r1: float, half_w: float) -> list:
    """A lance-shaped petal: widest near its base, sharp at the tip."""
    ca, sa = math.cos(angle), math.sin(angle)
    shape = [(r0, 0.0), (r0 + (r1 - r0) * 0.3, half_w), (r1, 0.0), (r0 + (r1 - r0) * 0.3, -half_w)]
    return [(cx + a * ca - b * sa, cy + a * sa + b * ca) for a, b in shape]


def _shade(colour: tuple, factor: float) -> tuple:
    return tuple(min(255, max(0, int(c * factor))) for c in colour)


def _draw_daisy(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx, cy, r, petal) -> None:
    n = int(rng.integers(16, 26))
    start = rng.uniform(0, 2 * math.pi)
    for i in range(n):
        angle = start + 2 * math.pi * i / n + rng.normal(0, 0.04)
        length = r * rng.uniform(0.85, 1.0)
        colour = _shade(petal, rng.uniform(0.85, 1.05))
        draw.polygon(_ellipse_petal(cx, cy, angle, r * 0.12, length, r * 0.075), fill=colour)
    rc = r * rng.uniform(0.18, 0.24)
    centre = _jitter(rng, _pick(rng, _CENTRE_COLOURS), 15)
    draw.ellipse((cx - rc, cy - rc, cx + rc, cy + rc), fill=centre)


def _draw_dandelion(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx, cy, r, petal) -> None:
    width = max(1, round(r / 60))
    for layer, (scale, count) in enumerate(((1.0, 420), (0.75, 320), (0.45, 200))):
        colour = _shade(petal, 0.75 + 0.12 * layer)
        for _ in range(count):
            angle = rng.uniform(0, 2 * math.pi)
            length = r * scale * rng.uniform(0.75, 1.0)
            x1, y1 = cx + length * math.cos(angle), cy + length * math.sin(angle)
            draw.line((cx, cy, x1, y1), fill=_shade(colour, rng.uniform(0.85, 1.1)), width=width)
            if layer == 0 and rng.random() < 0.5:
                tuft = r * 0.06
                draw.ellipse((x1 - tuft, y1 - tuft, x1 + tuft, y1 + tuft), fill=colour)


def _draw_roses(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx, cy, r, petal) -> None:
    # Outer cupped petals, then a tightening spiral of arcs: the rose's whorl.
    n_outer = int(rng.integers(5, 8))
    start = rng.uniform(0, 2 * math.pi)
    for i in range(n_outer):
        angle = start + 2 * math.pi * i / n_outer
        px, py = cx + r * 0.45 * math.cos(angle), cy + r * 0.45 * math.sin(angle)
        pr = r * 0.55
        draw.ellipse(
            (px - pr, py - pr, px + pr, py + pr),
            fill=_shade(petal, 0.9),
            outline=_shade(petal, 0.55),
            width=max(1, round(r / 40)),
        )
    draw.ellipse((cx - r * 0.7, cy - r * 0.7, cx + r * 0.7, cy + r * 0.7), fill=petal)
    line = max(2, round(r / 22))
    turns = rng.uniform(3.0, 4.0)
    steps = 60
    spin = 1 if rng.random() < 0.5 else -1
    for k in range(steps):
        t = k / steps
        radius = r * 0.68 * (1 - t)
        a0 = spin * (2 * math.pi * turns * t) + start
        sweep = math.degrees(2 * math.pi * turns / steps) * 1.6
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if radius > 1:
            draw.arc(
                box, math.degrees(a0), math.degrees(a0) + sweep, fill=_shade(petal, 0.5), width=line
            )


def _draw_sunflower(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx, cy, r, petal) -> None:
    n = int(rng.integers(18, 28))
    start = rng.uniform(0, 2 * math.pi)
    rc = r * rng.uniform(0.48, 0.56)
    for ring, offset in ((0, 0.0), (1, math.pi / n)):
        for i in range(n):
            angle = start + offset + 2 * math.pi * i / n
            colour = _shade(petal, 0.8 if ring == 0 else 1.0)
            draw.polygon(
                _pointed_petal(cx, cy, angle, rc * 0.9, r * (1.0 - 0.08 * ring), r * 0.14), fill=colour
            )
    centre = _jitter(rng, _pick(rng, _CENTRE_COLOURS), 15)
    draw.ellipse((cx - rc, cy - rc, cx + rc, cy + rc), fill=_shade(centre, 0.8))
    # Seeds on a Fermat spiral: the sunflower's signature texture.
    seeds = int(rc * rc / max(6.0, (r / 18) ** 2))
    golden = math.pi * (3 - math.sqrt(5))
    dot = max(1.0, rc / 22)
    for k in range(min(seeds, 900)):
        rad = rc * 0.95 * math.sqrt((k + 0.5) / max(seeds, 1))
        ang = k * golden
        x, y = cx + rad * math.cos(ang), cy + rad * math.sin(ang)
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=_shade(centre, 1.35 if k % 2 else 0.55))


def _draw_tulip(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx, cy, r, petal) -> None:
    green = _jitter(rng, _pick(rng, _GREENS), 15)
    stem_w = max(2, round(r * 0.09))
    draw.line(
        (cx, cy + r * 0.3, cx + rng.uniform(-0.2, 0.2) * r, cy + r * 2.4), fill=green, width=stem_w
    )
    side = 1 if rng.random() < 0.5 else -1
    leaf = [
        (cx, cy + r * 2.3),
        (cx + side * r * 0.55, cy + r * 1.4),
        (cx + side * r * 0.25, cy + r * 0.8),
        (cx + side * r * 0.15, cy + r * 1.6),
    ]
    draw.polygon(leaf, fill=_shade(green, 0.9))
    # Cup: a rounded bottom with three pointed petal tips, side petals darker.
    w, h = r * 0.62, r * 0.8
    cup = []
    for i in range(21):
        t = math.pi * i / 20
        cup.append((cx - w * math.cos(t), cy + h * 0.45 * math.sin(t)))
    draw.polygon([(cx - w, cy), *cup[::-1], (cx + w, cy)], fill=_shade(petal, 0.85))
    for tip_x, shade in ((-0.65, 0.78), (0.65, 0.78), (0.0, 1.0)):
        base_l = cx + (tip_x - 0.55) * w
        base_r = cx + (tip_x + 0.55) * w
        tip = (cx + tip_x * w * 0.9, cy - h * rng.uniform(0.9, 1.1))
        draw.polygon(
            [
                (max(cx - w, base_l), cy + h * 0.25),
                (max(cx - w, base_l) - w * 0.05, cy - h * 0.3),
                tip,
                (min(cx + w, base_r) + w * 0.05, cy - h * 0.3),
                (min(cx + w, base_r), cy + h * 0.25),
            ],
            fill=_shade(petal, shade),
        )


_DRAWERS = {
    "daisy": _draw_daisy,
    "dandelion": _draw_dandelion,
    "roses": _draw_roses,
    "sunflowers": _draw_sunflower,
    "tulips": _draw_tulip,
}


class _LeaningDraw:
    """Draws polygons and lines rotated about a point (a leaning plant)."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, angle: float) -> None:
        self._draw, self._cx, self._cy = draw, cx, cy
        self._cos, self._sin = math.cos(angle), math.sin(angle)

    def _turn(self, points: list) -> list:
        c, s, cx, cy = self._cos, self._sin, self._cx, self._cy
        return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]

    def polygon(self, points: list, **kwargs: object) -> None:
        self._draw.polygon(self._turn(points), **kwargs)

    def line(self, xy: tuple, **kwargs: object) -> None:
        points = self._turn([(xy[i], xy[i + 1]) for i in range(0, len(xy), 2)])
        self._draw.line([v for p in points for v in p], **kwargs)


def render_demo_image(label: str, index: int, seed: int = DEMO_SEED) -> Image.Image:
    """Draw one demo photo, the same for the same (label, index, seed).

    Args:
        label: one of `DEMO_CLASSES`.
        index: the photo's number within the class.
        seed: the dataset seed. Defaults to `DEMO_SEED`.

    Returns:
        An RGB image between `DEMO_MIN_SIDE` and `DEMO_MAX_SIDE` pixels a side.

    Raises:
        ValueError: `label` is not a demo class.
    """
    if label not in _DRAWERS:
        raise ValueError(f"label={label!r} is not a demo class; choose one of {list(DEMO_CLASSES)}")
    rng = np.random.default_rng([seed, DEMO_CLASSES.index(label), index])
    width = int(rng.integers(DEMO_MIN_SIDE, DEMO_MAX_SIDE + 1))
    height = int(rng.integers(DEMO_MIN_SIDE, DEMO_MAX_SIDE + 1))
    s = _SUPERSAMPLE
    background = _background(rng, width, height)
    # Flowers are drawn at `s` times the size and scaled down: anti-aliased edges.
    layer = Image.new("RGBA", (width * s, height * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    short = min(width, height) * s
    petal = _jitter(rng, _pick(rng, _PETAL_COLOURS), 20)
    # A few smaller companions behind the main flower, as in real photos.
    for _ in range(int(rng.integers(0, 3))):
        r = short * rng.uniform(0.08, 0.16)
        x, y = rng.uniform(0, width * s), rng.uniform(0, height * s)
        _DRAWERS[label](draw, rng, x, y, r, _jitter(rng, petal, 25))
    r = short * rng.uniform(0.22, 0.4)
    cx = rng.uniform(r, width * s - r)
    if label == "tulips":
        # Stems point down; lean the whole plant instead of spinning it. Radial
        # flowers need no rotation: their drawers start at a random angle.
        cy = rng.uniform(r, max(r + 1, height * s - 1.2 * r))
        leaning = _LeaningDraw(draw, cx, cy, math.radians(float(rng.uniform(-35, 35))))
        _DRAWERS[label](leaning, rng, cx, cy, r, petal)
    else:
        cy = rng.uniform(r, height * s - r)
        _DRAWERS[label](draw, rng, cx, cy, r, petal)
    small = layer.resize((width, height), Image.Resampling.BOX)
    image = Image.alpha_composite(background.convert("RGBA"), small).convert("RGB")
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    # Lighting: overall exposure, a directional falloff, a colour cast, sensor noise.
    pixels = np.asarray(image, dtype=np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    across = (np.arange(width, dtype=np.float32) / width - 0.5) * math.cos(direction)
    down = (np.arange(height, dtype=np.float32) / height - 0.5) * math.sin(direction)
    light = rng.uniform(0.65, 1.25) * (1 + rng.uniform(0.0, 0.5) * (down[:, None] + across[None, :]))
    cast = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    noise = rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(rng.uniform(2, 9))
    pixels = pixels * (light[..., None] * cast).astype(np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
