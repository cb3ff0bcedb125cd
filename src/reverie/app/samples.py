"""Sample images for ``reverie demo``, which must run on a fresh machine: no user files, no network.

Content photos come from the public-domain/CC0 images that scikit-image ships inside its wheel. The style
image is painted here, procedurally, so it carries no licence and needs no download.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from reverie.errors import ReverieError

# Only files that are inside the scikit-image 0.26 wheel (checked against its RECORD): anything else in
# skimage.data is fetched with pooch at run time, and the demo must never touch the network.
CONTENT_FILES: dict[str, str] = {
    "chelsea": "chelsea.png",  # cat, CC0
    "astronaut": "astronaut.png",  # NASA, public domain
    "coffee": "coffee.png",  # CC0
    "rocket": "rocket.jpg",  # NASA/SpaceX, public domain
}

_REINSTALL = "pip install 'reverie[demo]' (or pip install scikit-image==0.26.0)"
_NO_SKIMAGE = f"sample photos come from scikit-image: {_REINSTALL}"


def sample_content(name: str = "chelsea") -> np.ndarray:
    """Return one of scikit-image's shipped public-domain/CC0 photos as float32 RGB (H, W, 3) in 0..1."""
    if name not in CONTENT_FILES:
        raise ReverieError(f"unknown sample photo {name!r}; known: {', '.join(CONTENT_FILES)}")
    return _read_rgb(_skimage_data_dir() / CONTENT_FILES[name])


def _skimage_data_dir() -> Path:
    # find_spec locates the package without importing it: importing skimage is slow and pulls in scipy.
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ReverieError(_NO_SKIMAGE)
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _read_rgb(path: Path) -> np.ndarray:
    if not path.is_file():  # a trimmed or broken install: say so rather than show a traceback
        raise ReverieError(f"{path} is missing from the installed scikit-image; {_REINSTALL}")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


# --- the procedural painting -------------------------------------------------------------------------
# Style transfer copies the style image's textures, so the painting is built from thousands of short,
# thick, edged strokes along a swirling flow field (Van Gogh-like), in a rich impressionist palette.

_SS = 2  # supersampling factor: strokes are drawn large and downsampled for antialiasing

_ULTRAMARINE = np.array([22, 34, 120], np.float32)
_DEEP_NIGHT = np.array([12, 20, 62], np.float32)
_COBALT = np.array([20, 78, 170], np.float32)
_CERULEAN = np.array([96, 150, 205], np.float32)
_PALE_SKY = np.array([180, 205, 220], np.float32)
_WHITE = np.array([245, 242, 225], np.float32)
_CADMIUM = np.array([250, 200, 40], np.float32)
_OCHRE = np.array([200, 145, 50], np.float32)
_SIENNA = np.array([140, 72, 35], np.float32)
_VIRIDIAN = np.array([38, 126, 98], np.float32)
_DARK_GREEN = np.array([18, 52, 44], np.float32)


class _Scene:
    """Random layout of one painting, in scene units: x runs 0..aspect, y runs 0..1 downwards.

    Back to front: a night sky with vortices, moon and stars; distant blue hills; fields; a cypress.
    """

    def __init__(self, rng: np.random.Generator, aspect: float) -> None:
        self.horizon = rng.uniform(0.58, 0.68)
        self.hill_phase = rng.uniform(0, 2 * np.pi, 5)
        self.moon = np.array([rng.uniform(0.72, 0.9) * aspect, rng.uniform(0.12, 0.22)])
        n_stars = int(rng.integers(6, 10))
        self.stars = np.column_stack(
            [rng.uniform(0.05, 0.95 * aspect, n_stars), rng.uniform(0.06, self.horizon - 0.15, n_stars)]
        )
        n_vort = int(rng.integers(3, 5))
        self.vortices = np.column_stack(
            [
                rng.uniform(0.15, 0.85, n_vort) * aspect,
                rng.uniform(0.15, self.horizon - 0.12, n_vort),
                rng.choice([-1.0, 1.0], n_vort) * rng.uniform(0.8, 1.4, n_vort),  # spin and strength
                rng.uniform(0.09, 0.16, n_vort),  # radius
            ]
        )
        # Cypress: centre x, top y, half-width at its widest, phase of its wavy edge.
        self.cypress = (
            rng.uniform(0.06, 0.22) * aspect,
            rng.uniform(0.06, 0.16),
            rng.uniform(0.09, 0.12),
            rng.uniform(0, 6.3),
        )
        self.lights = [self.moon, *self.stars]
        self.light_radii = [0.07] + [0.022] * n_stars

    def ground_y(self, x: np.ndarray) -> np.ndarray:
        """Outline of the near fields at x."""
        p = self.hill_phase
        return (
            self.horizon
            + 0.035 * np.sin(x * 5.0 + p[0])
            + 0.02 * np.sin(x * 11.0 + p[1])
            + 0.01 * np.sin(x * 23.0 + p[2])
        )

    def far_y(self, x: np.ndarray) -> np.ndarray:
        """Outline of the distant hills at x: where the sky ends."""
        p = self.hill_phase
        return self.horizon - 0.1 + 0.03 * np.sin(x * 3.3 + p[3]) + 0.012 * np.sin(x * 8.7 + p[4])

    def in_cypress(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Mask of points inside the cypress: a tall, wavy flame shape rising from the bottom edge."""
        cx, top, half, phase = self.cypress
        u = np.clip((y - top) / (1.0 - top), 0, 1)  # 0 at the flame-like tip, 1 at the bottom edge
        hw = half * u**0.5 * (1 - 0.35 * u) * (1 + 0.25 * np.sin(y * 30.0 + phase))
        return (y > top) & (np.abs(x - cx - 0.02 * np.sin(y * 9.0 + phase)) < hw)

    def flow(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Stroke direction (angle, radians) at each point: swirling sky, rolling land, a rising cypress."""
        sky = y < self.far_y(x)
        ground = y >= self.ground_y(x)
        vx = np.ones_like(x)
        vy = np.where(sky, 0.25 * np.sin(x * 6.0 + y * 3.0), 0.15 * np.sin(x * 12.0))
        vy = np.where(ground, 0.45 * np.sin(x * 9.0 + y * 20.0), vy)
        for cx, cy, spin, rad in self.vortices:
            vx, vy = _add_vortex(vx, vy, x - cx, y - cy, spin * sky, rad)
        # Haloes swirl round the moon and stars too: strokes orbiting a light read as its glow.
        for (cx, cy), rad in zip(self.lights, self.light_radii, strict=True):
            vx, vy = _add_vortex(vx, vy, x - cx, y - cy, 3.0 * sky, rad * 1.3)
        # The cypress is painted in upward, flickering strokes, like a dark flame.
        cyp = self.in_cypress(x, y)
        vx = np.where(cyp, 0.6 * np.sin(y * 28.0 + x * 35.0 + self.cypress[3]), vx)
        vy = np.where(cyp, -1.0, vy)
        return np.arctan2(vy, vx)

    def colour(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Base paint colour (N, 3) in 0..255 at each point, before per-stroke variation."""
        col = np.where((y < self.far_y(x))[:, None], self._sky(x, y), self._far_hills(x, y))
        gy = self.ground_y(x)
        col = np.where((y >= gy)[:, None], self._fields(x, y, gy), col)
        cyp = _mix(_DARK_GREEN, _VIRIDIAN, 0.2 + 0.25 * np.sin(y * 35.0 + x * 20.0)[:, None])
        cyp = _mix(cyp, _DEEP_NIGHT, (0.3 + 0.3 * np.sin(y * 13.0 - x * 25.0))[:, None])
        return np.where(self.in_cypress(x, y)[:, None], cyp, col)

    def _sky(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t = np.clip(y / self.horizon, 0, 1)[:, None]
        sky = _mix(_DEEP_NIGHT, _ULTRAMARINE, t * 1.6)
        sky = _mix(sky, _COBALT, t * 1.6 - 0.6)
        # Bands of lighter paint following the swirls, as in Starry Night's sky.
        band = np.zeros_like(x)
        for cx, cy, _, rad in self.vortices:
            r = np.hypot(x - cx, y - cy)
            band = np.maximum(band, np.exp(-(((r - 0.8 * rad) / (0.35 * rad)) ** 2)))
        sky = _mix(sky, _CERULEAN, 0.85 * band[:, None])
        sky = _mix(sky, _PALE_SKY, (band[:, None] - 0.75) * 2.5)
        # Moon and stars: a hot yellow core, a white ring, then a pale halo fading into the blue.
        for (cx, cy), rad in zip(self.lights, self.light_radii, strict=True):
            r = np.hypot(x - cx, y - cy)[:, None] / rad
            sky = _mix(sky, _PALE_SKY, (1.9 - r) * 0.8)
            sky = _mix(sky, _WHITE, (1.4 - r) * 2)
            sky = _mix(sky, _CADMIUM, (1.0 - r) * 3)
        return sky

    def _far_hills(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # Cool, dark blue-greens: distance and night flatten the far hills.
        hills = _mix(_COBALT * 0.7, _VIRIDIAN * 0.55, (0.5 + 0.5 * np.sin(x * 17.0 + y * 9.0))[:, None])
        return _mix(hills, _ULTRAMARINE * 0.5, (0.5 + 0.5 * np.sin(x * 6.0 - y * 30.0))[:, None])

    def _fields(self, x: np.ndarray, y: np.ndarray, gy: np.ndarray) -> np.ndarray:
        # Fields of ochre and yellow between viridian hedgerows, dark where they meet the far hills.
        d = np.clip((y - gy) / max(1e-6, 1 - self.horizon), 0, 1)
        stripe = 0.5 + 0.5 * np.sin(y * 40.0 + 2.0 * np.sin(x * 4.0))
        field = _mix(_OCHRE, _CADMIUM, stripe[:, None] * 0.7)
        field = _mix(field, _VIRIDIAN, np.clip(np.sin(x * 7.0 + y * 15.0) - 0.3, 0, 1)[:, None] * 1.2)
        field = _mix(field, _SIENNA, np.clip(d - 0.7, 0, 1)[:, None] * 2)
        return _mix(_DARK_GREEN, field, np.clip(d * 4.0, 0, 1)[:, None])


def _add_vortex(
    vx: np.ndarray, vy: np.ndarray, dx: np.ndarray, dy: np.ndarray, spin: np.ndarray | float, rad: float
) -> tuple[np.ndarray, np.ndarray]:
    # Tangential velocity of a smooth vortex: ~0 at the centre, strong out to rad, fading beyond it.
    r2 = dx * dx + dy * dy
    k = spin * 2.1 * np.exp(-r2 / (2.0 * rad * rad)) / (rad * np.sqrt(r2 + 1e-4))
    return vx - k * dy, vy + k * dx


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    return a + (b - a) * np.clip(t, 0, 1)


def sample_painting(size: int = 512, seed: int = 0) -> np.ndarray:
    """Paint a licence-free, Van Gogh-like landscape as float32 RGB (H, W, 3) in 0..1.

    Landscape 4:3 with ``size`` as the long side; the same seed always gives the same painting.
    """
    if size < 8:
        raise ReverieError(f"sample painting size must be at least 8 px, got {size}")
    rng = np.random.default_rng(seed)
    width, height = size, round(size * 3 / 4)
    scene = _Scene(rng, width / height)
    unit = height * _SS  # canvas pixels per scene unit
    canvas = _underpainting(scene, width * _SS, height * _SS, unit)
    draw = ImageDraw.Draw(canvas)
    base = max(1.2, size / 110)  # stroke width at output scale: bold, yet thousands of strokes per frame
    for width_px, density in ((2.2 * base, 0.6), (1.5 * base, 1.0), (1.0 * base, 1.2)):
        _paint_layer(draw, canvas.size, scene, rng, unit, width_px * _SS, density)
    small = canvas.resize((width, height), Image.Resampling.LANCZOS)
    return _canvas_texture(np.asarray(small, np.float32) / 255.0, rng)


def _underpainting(scene: _Scene, w: int, h: int, unit: float) -> Image.Image:
    # A blurry, slightly darker version of the scene so gaps between strokes show plausible paint.
    gw, gh = max(2, w // 16), max(2, h // 16)
    gx, gy = np.meshgrid((np.arange(gw) + 0.5) * w / gw / unit, (np.arange(gh) + 0.5) * h / gh / unit)
    rgb = scene.colour(gx.ravel(), gy.ravel()).reshape(gh, gw, 3) * 0.8
    img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    return img.resize((w, h), Image.Resampling.BILINEAR)


def _paint_layer(
    draw: ImageDraw.ImageDraw,
    canvas_size: tuple[int, int],
    scene: _Scene,
    rng: np.random.Generator,
    unit: float,
    width: float,
    density: float,
) -> None:
    """Lay one layer of strokes, each a short path traced along the flow field, in random order."""
    w_img, h_img = canvas_size
    n = int(density * w_img * h_img / (width * width * 3.0))
    pts = _trace(scene, rng.uniform([0, 0], [w_img, h_img], (n, 2)), unit, steps=4, step_len=width * 0.9)
    mid = pts[2]
    colours = _stroke_colours(scene, rng, mid[:, 0] / unit, mid[:, 1] / unit)
    half = width / 2 * rng.uniform(0.8, 1.2, n)
    rims = _outline(pts, half + 0.9 * _SS).reshape(n, -1).tolist()
    bodies = _outline(pts, half).reshape(n, -1).tolist()
    streaks = _streak(pts, half).reshape(n, -1).tolist()
    rim_ink = _inks(colours * 0.55)
    body_ink = _inks(colours)
    light_ink = _inks(_mix(colours, _WHITE, 0.4))
    streak_w = max(1, round(width * 0.25))
    # Dark rim, body, then a highlight streak: each stroke reads as a ridge of thick paint catching the light.
    for k in rng.permutation(n).tolist():
        draw.polygon(rims[k], fill=rim_ink[k])
        draw.polygon(bodies[k], fill=body_ink[k])
        draw.line(streaks[k], fill=light_ink[k], width=streak_w)


def _trace(scene: _Scene, start: np.ndarray, unit: float, steps: int, step_len: float) -> np.ndarray:
    """Follow the flow field from every start point at once; returns (steps + 1, n, 2) canvas points."""
    pts = np.empty((steps + 1, *start.shape), np.float64)
    pts[0] = start
    for i in range(steps):
        ang = scene.flow(pts[i, :, 0] / unit, pts[i, :, 1] / unit)
        pts[i + 1] = pts[i] + step_len * np.stack([np.cos(ang), np.sin(ang)], axis=-1)
    return pts


def _frame(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Unit tangent and the normal that faces the light (from the upper left), per path point.
    tan = np.gradient(pts, axis=0)
    tan /= np.linalg.norm(tan, axis=-1, keepdims=True) + 1e-9
    nrm = np.stack([-tan[..., 1], tan[..., 0]], axis=-1)
    faces_light = (nrm.sum(axis=-1).mean(axis=0) < 0)[None, :, None]
    return tan, np.where(faces_light, nrm, -nrm)


def _outline(pts: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Polygon (n, points, 2) of a slightly tapered stroke with rounded ends around each path."""
    tan, nrm = _frame(pts)
    t = np.linspace(0, 1, len(pts))[:, None, None]
    hw = half[None, :, None] * (0.75 + 0.25 * np.sin(np.pi * t))
    c = 0.7071
    end, start = pts[-1], pts[0]
    he, hs = hw[-1], hw[0]
    poly = [
        *(pts + nrm * hw),
        end + he * (c * tan[-1] + c * nrm[-1]),
        end + he * tan[-1],
        end + he * (c * tan[-1] - c * nrm[-1]),
        *(pts - nrm * hw)[::-1],
        start + hs * (-c * tan[0] - c * nrm[0]),
        start - hs * tan[0],
        start + hs * (-c * tan[0] + c * nrm[0]),
    ]
    return np.stack(poly, axis=1)


def _streak(pts: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Highlight line (n, points, 2) along the lit side of each stroke, short of its ends."""
    _, nrm = _frame(pts)
    return np.transpose(pts[1:-1] + nrm[1:-1] * half[None, :, None] * 0.45, (1, 0, 2))


def _inks(colours: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(c) for c in colours.clip(0, 255).astype(np.int64).tolist()]


def _stroke_colours(scene: _Scene, rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Broken colour: each stroke varies its base paint a little, and a few are accents of another paint.
    n = len(x)
    col = scene.colour(x, y) * rng.uniform(0.82, 1.15, (n, 1)) + rng.normal(0, 10, (n, 3))
    sky = y < scene.far_y(x)
    accent = rng.random(n) < 0.06
    sky_accents = np.stack([_WHITE, _CERULEAN, _CADMIUM, _COBALT])
    ground_accents = np.stack([_VIRIDIAN, _CADMIUM, _COBALT, _SIENNA])
    pick = rng.integers(0, 4, n)
    accent_col = np.where(sky[:, None], sky_accents[pick], ground_accents[pick])
    col = np.where(accent[:, None], _mix(col, accent_col, 0.65), col)
    return col.clip(0, 255)


def _canvas_texture(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Linen weave plus fine grain, so flat gaps still carry the texture of a real canvas.
    h, w, _ = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    weave = 0.03 * np.sin(xx * 2.1) * np.sin(yy * 2.1)
    grain = rng.normal(0, 0.02, (h, w)).astype(np.float32)
    out = img * (1.0 + weave + grain)[..., None]
    return out.clip(0.0, 1.0).astype(np.float32)
