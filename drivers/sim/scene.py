"""Seeded, deterministic scenes of textured layers with ground-truth radiance and depth for the simulated rig.

A scene is a stack of layers, each a linear-RGB radiance image with a coverage (alpha) mask and a depth in
dioptres (1/metres; 0 = infinity). Depth is either one value (a fronto-parallel plane) or a per-pixel map (a
slanted plane). Layers are ordered far to near (ascending dioptres) because that is the order in which the
defocus renderer composites them: a near layer's coverage occludes whatever lies behind it.

Textures are dead-leaves images (occluding discs with radii distributed as r^-3): they are scale-invariant like
natural images, so every defocus level removes some detail and focus measures behave as they do on real scenes.
Radiance is linear (not gamma-encoded) because blur and pixel integration act on linear light.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Rec. 709 / sRGB luminance weights for linear RGB.
LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

_COVERAGE_SUPERSAMPLE = 4  # masks are drawn at 4x and area-averaged, so edges carry partial coverage
_DISC_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel disc centres and radii


@dataclass(frozen=True, eq=False)
class Layer:
    """One textured surface: radiance (H, W, 3) float32 linear RGB, alpha (H, W) float32 in [0, 1], depth in dpt.

    ``depth`` is a float for a fronto-parallel plane or an (H, W) float32 map for a slanted one.
    """

    radiance: np.ndarray
    alpha: np.ndarray
    depth: float | np.ndarray

    @property
    def slanted(self) -> bool:
        return isinstance(self.depth, np.ndarray)

    def depth_map(self) -> np.ndarray:
        """Depth of this layer at every pixel (dpt), float32."""
        if self.slanted:
            return self.depth.astype(np.float32, copy=False)
        return np.full(self.alpha.shape, self.depth, np.float32)


@dataclass(frozen=True, eq=False)
class Scene:
    """Layers far to near plus the ground truth they imply.

    ``radiance`` is the all-in-focus image (H, W, 3) float32 linear RGB (the layers composited without blur);
    ``depth`` (H, W) float32 is the depth in dpt of the surface visible at each pixel (the nearest layer with
    coverage >= 0.5). Instances compare and hash by identity so renderers can cache per scene.
    """

    layers: tuple[Layer, ...]
    radiance: np.ndarray
    depth: np.ndarray

    @property
    def height(self) -> int:
        return self.radiance.shape[0]

    @property
    def width(self) -> int:
        return self.radiance.shape[1]

    @classmethod
    def from_layers(cls, layers) -> Scene:
        """A scene of ``layers`` given far to near (each occludes the ones before it), with its ground truth.

        The order is the caller's and is not inferred from depths: a slanted background may reach nearer than
        a patch in front of it without occluding it (per-pixel z-ordering is not modelled).
        """
        layers = tuple(layers)
        if not layers:
            raise ValueError("a scene needs at least one layer")
        shape = layers[0].alpha.shape
        if any(layer.alpha.shape != shape or layer.radiance.shape != (*shape, 3) for layer in layers):
            raise ValueError("all layers must share one resolution")
        radiance = np.zeros((*shape, 3), np.float32)
        depth = np.full(shape, np.nan, np.float32)
        for layer in layers:
            a = layer.alpha[..., None]
            radiance = layer.radiance * a + radiance * (1.0 - a)
            visible = layer.alpha >= 0.5
            depth[visible] = layer.depth_map()[visible]
        return cls(layers, radiance.astype(np.float32), depth)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """Decode an sRGB image (uint8, or float in [0, 1]) to linear float32 with the exact sRGB EOTF."""
    v = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def dead_leaves(width: int, height: int, rng: np.random.Generator, *, r_min: float = 1.0,
                r_max: float | None = None, value_range: tuple[float, float] = (0.03, 1.0)) -> np.ndarray:
    """A dead-leaves texture (H, W, 3) float32 linear RGB.

    Disc radii follow p(r) ~ r^-3 on [r_min, r_max] (sampled by inverting the CDF), which makes the texture
    scale-invariant; enough discs are drawn to leave about e^-6 of the area uncovered by the last layer of
    leaves. Channel values are uniform in ``value_range``, whose lower bound keeps log intensities finite.
    """
    r_max = max(width, height) / 4.0 if r_max is None else r_max
    mean_r2 = 2.0 * np.log(r_max / r_min) / (r_min**-2 - r_max**-2)
    n = int(np.ceil(6.0 * width * height / (np.pi * mean_r2)))
    u = rng.random(n)
    radii = (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
    cx = rng.uniform(-r_max, width + r_max, n)
    cy = rng.uniform(-r_max, height + r_max, n)
    colours = rng.uniform(*value_range, size=(n, 3))
    # Large leaves first: the many small ones drawn later lie on top, as if fallen later.
    order = np.argsort(-radii, kind="stable")
    # Leaves entirely off the image (most of the small ones drawn in the margin) draw nothing: skipping them, and
    # rounding to OpenCV's fixed point once for all, leaves the image bit for bit the same at twice the speed
    # (this loop is the simulated rig's start-up time).
    visible = (cx + radii > -1) & (cx - radii < width) & (cy + radii > -1) & (cy - radii < height)
    order = order[visible[order]]
    scale = 1 << _DISC_SHIFT
    xs, ys, rs = (np.rint(v[order] * scale).astype(np.int64).tolist() for v in (cx, cy, radii))
    image = np.full((height, width, 3), np.mean(value_range), np.float32)
    for x, y, r, colour in zip(xs, ys, rs, colours[order].tolist(), strict=True):
        cv2.circle(image, (x, y), r, colour, -1, cv2.LINE_8, _DISC_SHIFT)
    return image


def ellipse_mask(width: int, height: int, centre: tuple[float, float], axes: tuple[float, float],
                 angle_deg: float = 0.0) -> np.ndarray:
    """Coverage (H, W) float32 of a filled ellipse, with fractional coverage on edge pixels."""
    s = _COVERAGE_SUPERSAMPLE
    big = np.zeros((height * s, width * s), np.uint8)
    # Pixel centres sit at integer coordinates; in the supersampled grid pixel (x, y) spans [s*x, s*x + s).
    c = tuple(round(((v + 0.5) * s - 0.5) * (1 << _DISC_SHIFT)) for v in centre)
    ax = tuple(round(v * s * (1 << _DISC_SHIFT)) for v in axes)
    cv2.ellipse(big, c, ax, angle_deg, 0, 360, 255, -1, cv2.LINE_8, _DISC_SHIFT)
    return cv2.resize(big.astype(np.float32) / 255.0, (width, height), interpolation=cv2.INTER_AREA)


def half_plane_mask(width: int, height: int, x_edge: float) -> np.ndarray:
    """Coverage (H, W) float32 of the region x < ``x_edge`` (pixel centres at integers; fractional at the edge)."""
    x = np.arange(width, dtype=np.float32)
    cov = np.clip(x_edge - (x - 0.5), 0.0, 1.0)
    return np.broadcast_to(cov, (height, width)).astype(np.float32)


def slanted_depth(width: int, height: int, depth_left: float, depth_right: float) -> np.ndarray:
    """Depth map (H, W) float32 of a plane slanted about the vertical axis: linear in x from left to right edge."""
    d = np.linspace(depth_left, depth_right, width, dtype=np.float32)
    return np.broadcast_to(d, (height, width)).astype(np.float32)


def make_scene(width: int, height: int, *, depths=(0.5, 1.5, 3.0), seed: int = 0, image: np.ndarray | None = None,
               slant: tuple[float, float] | None = None, contrast: float = 1.0) -> Scene:
    """A deterministic scene: the farthest depth is a full background, nearer depths are elliptic patches.

    ``depths`` are in dpt (sorted far to near internally). Each nearer layer is an ellipse centred in its own
    column of the image, so every layer keeps a visible region. ``image`` (sRGB uint8 or float RGB) replaces the
    background's texture, resized to the scene. ``slant=(d_left, d_right)`` makes the background a slanted plane
    whose depth varies linearly across the image instead of the farthest fronto-parallel depth. ``contrast`` < 1
    pulls every texture towards its mean (weak texture: the same scene, less for a focus measure to see).
    """
    rng = np.random.default_rng(seed)
    depths = sorted(float(d) for d in depths)
    if image is not None:
        rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
        texture = cv2.resize(srgb_to_linear(rgb[..., :3]), (width, height), interpolation=cv2.INTER_AREA)
    else:
        texture = dead_leaves(width, height, rng)
    background_depth = slanted_depth(width, height, *slant) if slant is not None else depths[0]
    layers = [Layer(texture, np.ones((height, width), np.float32), background_depth)]
    n_near = len(depths) - 1
    for i, d in enumerate(depths[1:]):
        column = width / max(n_near, 1)
        centre = ((i + 0.5) * column + rng.uniform(-0.1, 0.1) * column, height * rng.uniform(0.4, 0.6))
        axes = (column * rng.uniform(0.3, 0.4), height * rng.uniform(0.25, 0.35))
        mask = ellipse_mask(width, height, centre, axes, rng.uniform(-30.0, 30.0))
        layers.append(Layer(dead_leaves(width, height, rng), mask, d))
    if contrast != 1.0:
        layers = [Layer(_with_contrast(layer.radiance, contrast), layer.alpha, layer.depth) for layer in layers]
    return Scene.from_layers(layers)


def _with_contrast(texture: np.ndarray, contrast: float) -> np.ndarray:
    mean = texture.mean(axis=(0, 1), keepdims=True)
    return (mean + np.float32(contrast) * (texture - mean)).astype(np.float32)


def checkerboard_image(width: int, height: int, corners: tuple[int, int], homography: np.ndarray, *,
                       inverted: bool = False, dark: float = 0.05, bright: float = 0.9,
                       margin_squares: float = 1.0) -> np.ndarray:
    """A chessboard seen through ``homography`` (board units → image px), (H, W, 3) float32 linear RGB.

    ``corners`` = (cols, rows) of *inner* corners, as OpenCV's detectors count them; board units are squares,
    inner corner (i, j) sits at board point (i + 1, j + 1), so the board spans [0, cols + 1] × [0, rows + 1]. The
    board sits on a white quiet zone ``margin_squares`` wide (detectors need it) and the rest of the image is mid
    grey. ``inverted`` swaps the square colours, which is what a blinking target on a monitor alternates between.
    Drawn at 4x and area-averaged, so edges carry partial coverage like a real sensor's pixels.
    """
    cols, rows = corners
    s = _COVERAGE_SUPERSAMPLE
    # Board pixels at 4x: board unit -> supersampled image pixel (pixel centres at integers in both grids).
    up = np.array([[s, 0, (s - 1) / 2], [0, s, (s - 1) / 2], [0, 0, 1]], np.float64) @ np.asarray(homography, float)
    ppu = 16  # texture pixels per board unit, before warping
    m = margin_squares
    n_x, n_y = cols + 1, rows + 1
    tex_w, tex_h = round((n_x + 2 * m) * ppu), round((n_y + 2 * m) * ppu)
    u = (np.arange(tex_w) + 0.5) / ppu - m
    v = (np.arange(tex_h) + 0.5) / ppu - m
    inside = (u[None, :] >= 0) & (u[None, :] < n_x) & (v[:, None] >= 0) & (v[:, None] < n_y)
    parity = (np.floor(u)[None, :] + np.floor(v)[:, None]) % 2 == 1
    texture = np.where(inside & (parity != inverted), dark, bright).astype(np.float32)
    tex_to_board = np.array([[1 / ppu, 0, 0.5 / ppu - m], [0, 1 / ppu, 0.5 / ppu - m], [0, 0, 1]])
    big = cv2.warpPerspective(texture, up @ tex_to_board, (width * s, height * s), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    img = cv2.resize(np.where(big < 0, 0.5 * (dark + bright), big), (width, height), interpolation=cv2.INTER_AREA)
    return np.repeat(img[..., None], 3, axis=2).astype(np.float32)


def checkerboard_scene(width: int, height: int, corners: tuple[int, int], homography: np.ndarray,
                       depth_dpt: float, *, inverted: bool = False) -> Scene:
    """A calibration target: one fronto-parallel layer at ``depth_dpt`` showing :func:`checkerboard_image`.

    Pose the board with ``homography`` (board units → RGB px, e.g. K·[r1 r2 t] of a tilted board); a blinking
    target is the pair of scenes with ``inverted`` False and True.
    """
    image = checkerboard_image(width, height, corners, homography, inverted=inverted)
    return Scene.from_layers([Layer(image, np.ones((height, width), np.float32), float(depth_dpt))])
