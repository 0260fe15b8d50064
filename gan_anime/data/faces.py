"""The built-in ``faces`` dataset: tagged cartoon faces rendered offline, once, into a cache.

Faces are drawn with DiceBear's *lorelei* style ("Lorelei" by Lisa Wischofsky, CC0 1.0) through
the ``dicebear-core`` / ``dicebear-styles`` packages and rasterised with ``resvg-py``.  Every face
carries two tags drawn uniformly at random: a hair colour (:data:`HAIR_COLORS`, 12 classes) and an
eye colour (:data:`EYE_COLORS`, 10 classes).  Hair style, eyes, eyebrows, mouth, nose, head shape,
skin tone, glasses, earrings, hair flowers, freckles and a horizontal flip vary per face.

Face ``i`` of seed ``s`` depends only on ``(i, s, size)`` (its choices come from
``np.random.default_rng([s, i])``), so a set renders byte-identically in any order on any number
of processes.  :func:`ensure_faces` renders a set once into ``<cache>/faces-v1-{size}px-{count}-seed{seed}``::

    images/000000.png ...   uint8 RGB PNGs, size x size
    tags.csv                header "filename,hair,eye", rows like "images/000000.png,blonde,blue"
    COMPLETE                JSON {count, seed, size, version, ...}, written last

A directory without ``COMPLETE`` is an interrupted render: it is resumed (valid PNGs kept, missing
or corrupt ones re-rendered) and never used as it is.
"""

from __future__ import annotations

import concurrent.futures
import csv
import fcntl
import functools
import importlib.metadata
import importlib.resources
import io
import json
import multiprocessing
import os
import re
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import platformdirs
from absl import logging
from PIL import Image

VERSION = 1   # bump whenever the rendering changes: it names the cache directories
MIN_SIZE, MAX_SIZE = 16, 512
MAX_COUNT = 1_000_000  # file names have six digits

#: Hair colour classes, in class-index order: name -> "#rrggbb".
HAIR_COLORS: Dict[str, str] = {
    "orange": "#ff8c1a", "white": "#f7f7f7", "aqua": "#2ee6e6", "gray": "#a6a6a6",
    "green": "#2eb82e", "red": "#e01b24", "purple": "#8a2be2", "pink": "#ff69b4",
    "blue": "#1f5bd6", "black": "#1a1a1a", "brown": "#7b4a22", "blonde": "#f5dd6b",
}
#: Eye colour classes, in class-index order: name -> "#rrggbb".
EYE_COLORS: Dict[str, str] = {
    "black": "#141414", "orange": "#ff8000", "pink": "#ff5ca8", "yellow": "#f2d600",
    "aqua": "#00d5d5", "purple": "#9030e0", "green": "#18b018", "brown": "#8b4513",
    "red": "#e0101c", "blue": "#1e5ee6",
}
#: Plain background: a muted mid-tone slate, far (CIE76 dE >= 33) from every hair colour and skin tone.
BACKGROUND_COLOR = "#606890"
#: Skin tones, light to medium (dE >= 20 from every hair colour).
SKIN_COLORS: Tuple[str, ...] = ("#f8d9c0", "#f3c9a8", "#eab894", "#dca27c", "#c88a62")
_LINE_COLOR = "#000000"   # outline, eyebrows, nose, mouth
_ACCESSORY_COLORS = ("#2b2b2b", "#5a5a66")   # glasses, earrings, hair flowers: dark neutrals

# Variants left out because the tagged colour is barely visible, measured by rendering each one in
# a pure test colour.  Eyes: closed, slit or dot eyes, whose colour keeps < 70 px after a 9x9
# erosion at 512 px (the others keep >= 240: a solid iris).  Hair: near-bald styles covering < 7%
# of the cropped frame (the others cover >= 9%).
EXCLUDED_EYES = ("variant01", "variant03", "variant13", "variant19", "variant22")
EXCLUDED_HAIR = ("variant25", "variant28", "variant34")
EXCLUDED_GLASSES = ("variant02",)   # dark sunglasses hide the eyes
# Optional parts: probability of being drawn.
_OPTIONAL = {"glasses": 0.10, "earrings": 0.10, "hairAccessories": 0.05, "freckles": 0.05}

# Crop window in the 980x980 lorelei canvas: centre x, centre y, side.  It spans from the top of the
# head (tall hair is cut) to just below the chin, so the head fills the frame.
_CROP_CX, _CROP_CY, _CROP_SIDE = 470.0, 480.0, 660.0
_CANVAS = 980.0
_SUPERSAMPLE = 2          # render at 2x, then downsample with a box filter
_MARKER = "COMPLETE"
_TMP_PREFIX = ".tmp-"
_CLIP_ATTR = re.compile(r' clip-path="url\(#[^)"]*\)"')


def default_cache_dir() -> str:
    """``$GAN_ANIME_CACHE`` if set (and non-empty), else the per-user cache dir for ``gan_anime``."""
    return os.environ.get("GAN_ANIME_CACHE") or platformdirs.user_cache_dir("gan_anime")


def _check_int(name: str, value, lo: int, hi: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        expected = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise ValueError(f"{name} must be {expected}, got {value}")
    return int(value)


def _check(count: int, seed: int, size: int) -> Tuple[int, int, int]:
    return (_check_int("count", count, 1, MAX_COUNT), _check_int("seed", seed, 0),
            _check_int("size", size, MIN_SIZE, MAX_SIZE))


@functools.lru_cache(maxsize=1)
def _style():
    """(dicebear Style, {component: sorted usable variant names}); built once per process (~0.4 s)."""
    from dicebear import Style
    definition = json.loads(importlib.resources.files("dicebear_styles").joinpath("lorelei.json").read_text())
    excluded = {"eyes": EXCLUDED_EYES, "hair": EXCLUDED_HAIR, "glasses": EXCLUDED_GLASSES}
    variants = {name: sorted(v for v in comp["variants"] if v not in excluded.get(name, ()))
                for name, comp in definition["components"].items()}
    return Style(definition), variants


def _face_options(index: int, seed: int) -> Tuple[dict, str, str]:
    """DiceBear options and (hair, eye) tags of face ``index``; every choice comes from
    ``np.random.default_rng([seed, index])``."""
    _, variants = _style()
    rng = np.random.default_rng([seed, index])
    hair = list(HAIR_COLORS)[rng.integers(len(HAIR_COLORS))]
    eye = list(EYE_COLORS)[rng.integers(len(EYE_COLORS))]

    def pick(items: Sequence[str]) -> str:
        return items[rng.integers(len(items))]

    skin = pick(SKIN_COLORS)
    opts = {
        "seed": f"faces-v{VERSION}-{seed}-{index}",
        "hairVariant": pick(variants["hair"]), "headVariant": pick(variants["head"]),
        "eyesVariant": pick(variants["eyes"]), "eyebrowsVariant": pick(variants["eyebrows"]),
        "mouthVariant": pick(variants["mouth"]), "noseVariant": pick(variants["nose"]),
        "hairColor": [HAIR_COLORS[hair]], "eyesColor": [EYE_COLORS[eye]], "skinColor": [skin],
        "backgroundColor": [BACKGROUND_COLOR], "outlineColor": [_LINE_COLOR],
        "eyebrowsColor": [_LINE_COLOR], "noseColor": [_LINE_COLOR], "mouthColor": [_LINE_COLOR],
        "beardProbability": 0,
    }
    for part, p in _OPTIONAL.items():
        shown = bool(rng.random() < p)
        opts[part + "Probability"] = 100 if shown else 0
        opts[part + "Variant"] = pick(variants[part])
        opts[part + "Color"] = [pick(_ACCESSORY_COLORS)]
    # Freckles a little darker than the skin.
    opts["frecklesColor"] = ["#%02x%02x%02x" % tuple(int(int(skin[i:i + 2], 16) * 0.7) for i in (1, 3, 5))]
    flip = bool(rng.random() < 0.5)
    # Zoom into the crop window: scale about the canvas centre, then translate (in % of the canvas);
    # a horizontal flip mirrors the window centre, so the x offset changes sign.
    scale = _CANVAS / _CROP_SIDE
    tx = (_CANVAS / 2 - _CROP_CX) * scale / _CANVAS * 100
    ty = (_CANVAS / 2 - _CROP_CY) * scale / _CANVAS * 100
    opts.update(scale=round(scale, 4), translateX=round(-tx if flip else tx, 4), translateY=round(ty, 4),
                flip="horizontal" if flip else "none")
    return opts, hair, eye


def _svg_unvalidated(opts: dict) -> str:
    """What ``dicebear.Avatar(style, opts).to_string()`` returns, minus the JSON-schema validation
    of ``opts`` (~2/3 of its time).  Uses dicebear internals, so :func:`_fast_svg_ok` checks it."""
    from dicebear.options import Options
    from dicebear.renderer import Renderer
    from dicebear.resolver import Resolver
    options = Options.__new__(Options)
    options._data, options._tags = opts, None   # opts is fresh per face: no defensive copy
    style = _style()[0]
    return Renderer(style, Resolver(style, options)).render()


@functools.lru_cache(maxsize=1)
def _fast_svg_ok() -> bool:
    """Once per process: the unvalidated path gives the public API's SVG for a sample face, whose
    options have the same keys and value types as every face's (so validating them once suffices)."""
    from dicebear import Avatar
    opts = _face_options(0, 0)[0]
    try:
        return _svg_unvalidated(opts) == Avatar(_style()[0], opts).to_string()
    except Exception:  # dicebear internals changed: use the public API
        return False


def _to_svg(opts: dict) -> str:
    if _fast_svg_ok():
        return _svg_unvalidated(opts)
    from dicebear import Avatar
    return Avatar(_style()[0], opts).to_string()


def _face_tags(index: int, seed: int = 0) -> Tuple[str, str]:
    """(hair, eye) tag names of face ``index`` without rendering it."""
    _, hair, eye = _face_options(index, seed)
    return hair, eye


def render_face(index: int, seed: int = 0, size: int = 64) -> Tuple[np.ndarray, str, str]:
    """Render face ``index`` of the set with ``seed``.

    Returns (image, hair, eye): image is uint8 [size, size, 3] RGB in 0..255, hair is a key of
    :data:`HAIR_COLORS`, eye a key of :data:`EYE_COLORS`.  Deterministic in (index, seed, size).
    """
    _check_int("index", index, 0)
    _check_int("seed", seed, 0)
    _check_int("size", size, MIN_SIZE, MAX_SIZE)
    import resvg_py
    opts, hair, eye = _face_options(index, seed)
    # The canvas clip is redundant (the view is the canvas) and costs ~30% of the raster time.
    svg = _CLIP_ATTR.sub("", _to_svg(opts), count=1)
    px = size * _SUPERSAMPLE
    png = resvg_py.svg_to_bytes(svg_string=svg, width=px, height=px, skip_system_fonts=True)
    img = Image.open(io.BytesIO(bytes(png))).convert("RGB")
    if px != size:
        img = img.reduce(_SUPERSAMPLE)   # exact box filter over each 2x2 block
    return np.asarray(img, dtype=np.uint8), hair, eye


def faces_dir(count: int, seed: int = 0, size: int = 64, cache_dir: Optional[str] = None) -> str:
    """Directory of the face set (count, seed, size) under ``cache_dir`` (default
    :func:`default_cache_dir`).  Only computes the path; nothing is rendered or created."""
    count, seed, size = _check(count, seed, size)
    return os.path.join(cache_dir or default_cache_dir(), f"faces-v{VERSION}-{size}px-{count}-seed{seed}")


def _image_name(index: int) -> str:
    return f"images/{index:06d}.png"


def _write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it over ``path``.  The temp name
    is unique per process (the lock keeps other renderers out) and the file mode follows the umask."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f"{_TMP_PREFIX}{os.getpid()}-{name}.part")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _png_ok(path: str, size: int) -> bool:
    """True if ``path`` is a fully decodable size x size RGB image."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.size == (size, size) and img.mode == "RGB"
    except Exception:  # missing, truncated, corrupt: all mean "render again"
        return False


def _render_chunk(root: str, seed: int, size: int,
                  indices: Sequence[int]) -> Tuple[List[Tuple[int, str, str]], int]:
    """Worker: make sure the PNGs of ``indices`` exist and decode.
    Returns ([(index, hair, eye)], number rendered)."""
    tags, rendered = [], 0
    for i in indices:
        path = os.path.join(root, _image_name(i))
        if _png_ok(path, size):
            tags.append((i, *_face_tags(i, seed)))
            continue
        img, hair, eye = render_face(i, seed, size)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", optimize=False, compress_level=6)
        _write_atomic(path, buf.getvalue())
        tags.append((i, hair, eye))
        rendered += 1
    return tags, rendered


def _worker_init(parent: int) -> None:
    """Pool initializer: exit once the parent is gone.  Workers of a SIGKILLed parent would
    otherwise block forever on the task pipe, still holding the inherited render lock."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _marker(count: int, seed: int, size: int) -> dict:
    return {"count": count, "seed": seed, "size": size, "version": VERSION}


def _is_complete(root: str, count: int, seed: int, size: int) -> bool:
    try:
        with open(os.path.join(root, _MARKER)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return False
    return (isinstance(info, dict) and all(info.get(k) == v for k, v in _marker(count, seed, size).items())
            and os.path.isfile(os.path.join(root, "tags.csv")))


def _package_versions() -> Dict[str, str]:
    out = {}
    for pkg in ("dicebear-core", "dicebear-styles", "resvg-py", "pillow"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def ensure_faces(count: int, seed: int = 0, size: int = 64, cache_dir: Optional[str] = None,
                 workers: Optional[int] = None) -> str:
    """Render the face set (count, seed, size) into the cache unless it is already complete;
    return its directory (see :func:`faces_dir`) holding ``images/NNNNNN.png`` (uint8 RGB,
    size x size), ``tags.csv`` and the ``COMPLETE`` marker.

    Rendering runs on ``workers`` processes (default ``os.cpu_count()``; 1 renders in this
    process).  An interrupted render is resumed; a file lock keeps concurrent callers apart.
    """
    count, seed, size = _check(count, seed, size)
    if workers is not None:
        workers = _check_int("workers", workers, 1)
    root = faces_dir(count, seed, size, cache_dir)
    if _is_complete(root, count, seed, size):
        logging.info("faces: using %d cached %dpx faces in %s", count, size, root)
        return root
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    with open(os.path.join(root, ".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logging.info("faces: %s is being rendered by another process; waiting", root)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(root, count, seed, size):   # finished by whoever held the lock
            return root
        _render_all(root, count, seed, size, workers or os.cpu_count() or 1)
    return root


def _render_all(root: str, count: int, seed: int, size: int, workers: int) -> None:
    images = os.path.join(root, "images")
    for directory in (root, images):         # leftovers of a killed writer (we hold the lock)
        for name in os.listdir(directory):
            if name.startswith(_TMP_PREFIX):
                os.unlink(os.path.join(directory, name))
    resumed = any(name.endswith(".png") for name in os.listdir(images))
    logging.info("faces: %s %d %dpx faces (seed %d) into %s on %d process(es)",
                 "resuming" if resumed else "rendering", count, size, seed, root, workers)
    start = time.perf_counter()
    workers = max(1, min(workers, count))
    chunk = max(1, min(256, -(-count // (workers * 8))))
    chunks = [range(i, min(i + chunk, count)) for i in range(0, count, chunk)]
    tags: List[Tuple[int, str, str]] = []
    rendered = done = 0
    last_log = start

    def collect(result) -> None:
        nonlocal rendered, done, last_log
        tags.extend(result[0])
        rendered += result[1]
        done += len(result[0])
        now = time.perf_counter()
        if now - last_log > 10 or done == count:
            last_log = now
            logging.info("faces: %d/%d (%.0f%%), %.0f faces/s", done, count, 100 * done / count,
                         max(rendered, 1) / (now - start))

    if workers == 1:
        for c in chunks:
            collect(_render_chunk(root, seed, size, c))
    else:
        # fork: workers need no re-import (the package may pull in TensorFlow) and touch only
        # numpy/PIL/resvg, never TF, so forking a process that imported TF is safe here.
        ctx = multiprocessing.get_context("fork") if hasattr(os, "fork") else None
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                                    initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_render_chunk, root, seed, size, c) for c in chunks]
            try:
                for fut in concurrent.futures.as_completed(futures):
                    collect(fut.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)   # do not render the rest first
                raise
    tags.sort()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filename", "hair", "eye"])
    writer.writerows((_image_name(i), hair, eye) for i, hair, eye in tags)
    _write_atomic(os.path.join(root, "tags.csv"), buf.getvalue().encode())
    os.sync()   # images and tags on disk before the marker says they are
    _write_atomic(os.path.join(root, _MARKER),
                  json.dumps({**_marker(count, seed, size), "packages": _package_versions()}).encode())
    elapsed = time.perf_counter() - start
    logging.info("faces: rendered %d and kept %d of %d faces in %.1f s (%.0f rendered faces/s)",
                 rendered, count - rendered, count, elapsed, rendered / max(elapsed, 1e-9))


__all__ = ["HAIR_COLORS", "EYE_COLORS", "default_cache_dir", "render_face", "faces_dir", "ensure_faces"]
