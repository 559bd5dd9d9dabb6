"""Class colours for many categories: one colour per class, told apart as far as colours can be, by people with
full colour vision and with the two common colour-vision deficiencies alike.

No fixed palette has 48 (UCF), 200 (ActivityNet) or 309 (VGGSound) colours that stay apart under colour
blindness; none can. So the palette starts with the Okabe-Ito colours (safe for every viewer) and grows
greedily: each next colour is the sRGB grid point farthest (CIELAB distance) from every colour chosen so far,
as seen with normal vision, with deuteranopia and with protanopia, the worst of the three counting. Greedy
growth makes every palette a prefix of any longer one, so a class keeps its colour when classes are added.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

# Okabe-Ito without black (the query star's colour) and yellow (too pale on a white page).
SAFE_START = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00")
GRID_STEPS = 16  # candidates per sRGB channel: 16**3 = 4,096 colours to choose from
LIGHTNESS = (30.0, 80.0)  # CIELAB L* kept: dark enough for a white page, light enough beside the black star
# Machado, Oliveira and Fernandes (2009), severity 1.0, applied to linear RGB: how a colour looks to a viewer
# with deuteranopia or protanopia.
DEUTERANOPIA = np.array(
    [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
)
PROTANOPIA = np.array(
    [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
)
RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
WHITE = RGB_TO_XYZ.sum(axis=1)  # D65 white point, (3,)


def linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> linear light, (..., 3)."""
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def lab(rgb_linear: np.ndarray) -> np.ndarray:
    """Linear RGB (..., 3) -> CIELAB (..., 3)."""
    xyz = np.clip(rgb_linear, 0, 1) @ RGB_TO_XYZ.T / WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def views(srgb: np.ndarray) -> np.ndarray:
    """How colours (n, 3) look with normal vision, deuteranopia and protanopia: CIELAB, (3, n, 3)."""
    rgb = linear(srgb)
    return np.stack([lab(rgb), lab(rgb @ DEUTERANOPIA.T), lab(rgb @ PROTANOPIA.T)])


def hex_colour(srgb: np.ndarray) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02X}" for c in srgb)


def from_hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])


@functools.cache
def candidates() -> tuple[np.ndarray, np.ndarray]:
    """The sRGB grid points (m, 3) whose lightness suits a class marker, and their three views (3, m, 3)."""
    axis = np.linspace(0, 1, GRID_STEPS)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    lightness = lab(linear(grid))[:, 0]
    grid = grid[(lightness >= LIGHTNESS[0]) & (lightness <= LIGHTNESS[1])]
    return grid, views(grid)


class GrowingPalette:
    """The palette so far, grown one colour at a time (so its colours never change), with each candidate's
    distance to its nearest chosen colour in the worst of the three views, kept up to date as it grows."""

    def __init__(self):
        self.colours: list[str] = []
        self.worst: np.ndarray | None = None  # (m,) per candidate, once the safe start is in
        self.lock = threading.Lock()  # the app's threads share one palette

    def first(self, n: int) -> tuple[str, ...]:
        with self.lock:
            while len(self.colours) < n:
                self.colours.append(self.next_colour())
            return tuple(self.colours[:n])

    def next_colour(self) -> str:
        if len(self.colours) < len(SAFE_START):
            return SAFE_START[len(self.colours)]
        pool, seen = candidates()
        if self.worst is None:
            self.worst = np.full(len(pool), np.inf)
            for colour in self.colours:
                self.closer(seen, colour)
        colour = hex_colour(pool[int(np.argmax(self.worst))])
        self.closer(seen, colour)
        return colour

    def closer(self, seen: np.ndarray, colour: str) -> None:
        """Update `worst` with the distance from every candidate to the newly chosen `colour`."""
        gap = np.linalg.norm(seen - views(from_hex(colour)[None]), axis=-1).min(axis=0)  # (m,)
        self.worst = np.minimum(self.worst, gap)


PALETTE = GrowingPalette()


def palette(n: int) -> tuple[str, ...]:
    """n colours, as "#RRGGBB"; palette(n) starts with palette(m) for every m < n."""
    return PALETTE.first(n)


def class_colours(class_ids: list[str]) -> dict[str, str]:
    """One colour per class id, by its position in `class_ids` (the knowledge's class order, where added
    classes come last): the same class keeps its colour in every map and after classes are added."""
    colours = palette(len(class_ids))
    return {c: colours[i] for i, c in enumerate(class_ids)}
