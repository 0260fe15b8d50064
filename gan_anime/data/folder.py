"""Image-folder datasets: any tree of JPEG/PNG/WebP/BMP/GIF files, plus optional hair/eye tags.

Images are decoded once, in parallel through ``tf.data`` (PIL inside, so every
mode — RGBA, grayscale, palette, 16-bit — and every size works), composited on
white, centre-cropped to a square, resized to the model resolution and kept as
one uint8 array.  The array is cached on disk keyed by the file list, sizes,
modification times and resolution, so a resumed run does not decode again.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from absl import logging
from PIL import Image, ImageFile

from gan_anime.files import atomic_write

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
CACHE_VERSION = 1


@dataclasses.dataclass
class ImageSet:
    """Decoded images and (optional) integer tags.

    images: uint8 [N, S, S, 3];  hair, eye: int32 [N] or None;  classes: names by index.
    """

    images: np.ndarray
    hair: Optional[np.ndarray] = None
    eye: Optional[np.ndarray] = None
    hair_classes: Tuple[str, ...] = ()
    eye_classes: Tuple[str, ...] = ()
    skipped: int = 0
    source: str = ""

    @property
    def tagged(self) -> bool:
        return self.hair is not None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def list_images(data_dir: str) -> List[str]:
    """Relative paths of candidate image files under ``data_dir``, sorted (deterministic order)."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir} does not exist (expected a folder of images)")
    found = []
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.relpath(os.path.join(root, name), data_dir))
    return sorted(found)


def load_image(data: bytes, size: int) -> Optional[np.ndarray]:
    """Decode image bytes to uint8 [size, size, 3], or None if they are not a complete, readable image.

    Transparent pixels are composited on white; the largest centred square is kept.
    """
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey half-image
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("P", "PA", "LA", "RGBA", "La") or "transparency" in im.info:
                im = im.convert("RGBA")
            if im.mode == "RGBA":
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
            if side != size:
                # LANCZOS (with reducing_gap) downsamples without aliasing; tiny images are upsampled.
                im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0 if side > size else None)
            return np.asarray(im, dtype=np.uint8)
    except Exception:  # noqa: BLE001 - any decoder failure means "skip this file"
        return None


def decode_all(data_dir: str, paths: Sequence[str], size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Decode ``paths`` in parallel with ``tf.data``; returns (images uint8 [N,S,S,3], ok bool [N])."""
    import tensorflow as tf

    def _load(path):
        path = path.decode() if isinstance(path, bytes) else path
        try:
            with open(path, "rb") as f:
                img = load_image(f.read(), size)
        except OSError:
            img = None
        if img is None:
            return np.zeros((size, size, 3), np.uint8), False
        return img, True

    full = [os.path.join(data_dir, p) for p in paths]
    ds = tf.data.Dataset.from_tensor_slices(full).map(
        lambda p: tf.numpy_function(_load, [p], (tf.uint8, tf.bool)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)
    images = np.zeros((len(full), size, size, 3), np.uint8)
    ok = np.zeros((len(full),), bool)
    i = 0
    for batch_img, batch_ok in ds.as_numpy_iterator():
        n = len(batch_ok)
        images[i:i + n], ok[i:i + n] = batch_img, batch_ok
        i += n
    return images, ok


def read_tags(path: str) -> Dict[str, Tuple[str, str]]:
    """Read a tags file: CSV with header ``filename,hair,eye``, or JSON.

    JSON may be ``{"file.png": {"hair": "blue", "eye": "red"}}`` or a list of
    ``{"filename": ..., "hair": ..., "eye": ...}``.  Returns {filename: (hair, eye)}.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tags file {path} does not exist (expected CSV filename,hair,eye or JSON)")
    tags: Dict[str, Tuple[str, str]] = {}
    if path.lower().endswith(".json"):
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"tags file {path} is not valid JSON ({e})") from None
        rows = ([{"filename": k, **v} for k, v in data.items()] if isinstance(data, dict) else data)
        for row in rows:
            if not isinstance(row, dict) or not {"filename", "hair", "eye"} <= set(row):
                raise ValueError(f"tags file {path}: every entry needs filename, hair and eye, got {row!r}")
            tags[str(row["filename"])] = (str(row["hair"]).strip(), str(row["eye"]).strip())
    else:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"filename", "hair", "eye"} <= set(reader.fieldnames):
                raise ValueError(f"tags file {path} needs a header with filename,hair,eye; "
                                 f"got {reader.fieldnames}")
            for row in reader:
                tags[row["filename"].strip()] = (row["hair"].strip(), row["eye"].strip())
    if not tags:
        raise ValueError(f"tags file {path} has no rows")
    return tags


def _cache_key(data_dir: str, paths: Sequence[str], size: int) -> str:
    h = hashlib.sha1(f"{CACHE_VERSION}|{os.path.abspath(data_dir)}|{size}".encode())
    for p in paths:
        st = os.stat(os.path.join(data_dir, p))
        h.update(f"|{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _cached_decode(data_dir: str, paths: Sequence[str], size: int,
                   cache_dir: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
    if cache_dir is None:
        return decode_all(data_dir, paths, size)
    cache = os.path.join(cache_dir, f"folder-{_cache_key(data_dir, paths, size)}.npz")
    if os.path.isfile(cache):
        try:
            with np.load(cache) as z:
                return z["images"], z["ok"]
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            logging.warning("image cache %s is unreadable; decoding again", cache)
    images, ok = decode_all(data_dir, paths, size)
    atomic_write(cache, lambda tmp: np.savez(tmp, images=images, ok=ok))
    return images, ok


def load_folder(data_dir: str, size: int, tags_path: Optional[str] = None,
                hair_classes: Sequence[str] = (), eye_classes: Sequence[str] = (),
                cache_dir: Optional[str] = None) -> ImageSet:
    """Load every readable image under ``data_dir`` at ``size`` x ``size``.

    With ``tags_path``, only tagged images are kept and tags become class indices:
    in the order of ``hair_classes``/``eye_classes`` when given (a resumed run
    keeps its saved order), else sorted by name.
    Raises ``FileNotFoundError``/``ValueError`` naming the path when nothing is usable.
    """
    paths = list_images(data_dir)
    if not paths:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {data_dir}")
    tags = read_tags(tags_path) if tags_path else None
    untagged = 0
    if tags is not None:
        by_name = {os.path.basename(k): v for k, v in tags.items()}
        keep = [p for p in paths if p in tags or os.path.basename(p) in by_name]
        untagged = len(paths) - len(keep)
        if not keep:
            raise ValueError(f"no image under {data_dir} is named in tags file {tags_path}")
        paths = keep
    images, ok = _cached_decode(data_dir, paths, size, cache_dir)
    skipped = int((~ok).sum())
    if skipped:
        logging.warning("skipped %d unreadable or non-image file(s) of %d under %s", skipped, len(paths), data_dir)
    if untagged:
        logging.warning("skipped %d image(s) under %s that have no row in %s", untagged, data_dir, tags_path)
    if not ok.any():
        raise ValueError(f"no readable image under {data_dir} ({len(paths)} file(s) tried)")
    paths = [p for p, good in zip(paths, ok) if good]
    out = ImageSet(images=images[ok], skipped=skipped, source=data_dir)
    if tags is not None:
        pairs = [tags.get(p) or by_name[os.path.basename(p)] for p in paths]
        out.hair_classes = tuple(hair_classes) or tuple(sorted({h for h, _ in pairs}))
        out.eye_classes = tuple(eye_classes) or tuple(sorted({e for _, e in pairs}))
        hair_index = {c: i for i, c in enumerate(out.hair_classes)}
        eye_index = {c: i for i, c in enumerate(out.eye_classes)}
        unknown = sorted({h for h, _ in pairs if h not in hair_index} | {e for _, e in pairs if e not in eye_index})
        if unknown:
            raise ValueError(f"tags {unknown} in {tags_path} are not among this run's classes "
                             f"(hair: {list(out.hair_classes)}, eye: {list(out.eye_classes)})")
        out.hair = np.array([hair_index[h] for h, _ in pairs], np.int32)
        out.eye = np.array([eye_index[e] for _, e in pairs], np.int32)
    logging.info("loaded %d images (%dx%d) from %s", len(out), size, size, data_dir)
    return out
