"""Image-folder datasets: any tree of JPEG/PNG/WebP/BMP/GIF files, plus optional hair/eye tags.

Images are decoded once, in parallel (PIL, so every mode — RGBA, grayscale, palette,
16-bit — and every size works), composited on white, centre-cropped to a square,
resized to the model resolution and kept as one uint8 array (:mod:`gan_anime.data.decode`).
The array is cached on disk keyed by the file list, sizes, modification times and
resolution, so a resumed run does not decode again.  Tags files: :mod:`gan_anime.data.tagfile`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
from absl import logging

from gan_anime.data.decode import CACHE_VERSION, cached_decode, decode_all, load_image  # noqa: F401
from gan_anime.data.tagfile import class_names, match_tags, read_tag_rows, read_tags  # noqa: F401

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


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


def load_folder(data_dir: str, size: int, tags_path: Optional[str] = None,
                hair_classes: Sequence[str] = (), eye_classes: Sequence[str] = (),
                cache_dir: Optional[str] = None) -> ImageSet:
    """Load every readable image under ``data_dir`` at ``size`` x ``size``.

    With ``tags_path``, only tagged images are kept and tags become class indices:
    in the order of ``hair_classes``/``eye_classes`` when given (a resumed run
    keeps its saved order), else sorted by name.  The images are one array, 64-byte
    aligned (memory-mapped from the cache when ``cache_dir`` is given).
    Raises ``FileNotFoundError``/``ValueError`` naming the path when nothing is usable.
    """
    paths = list_images(data_dir)
    if not paths:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {data_dir}")
    if tags_path:
        matched = match_tags(read_tag_rows(tags_path), paths, data_dir, tags_path)
        if not matched:
            raise ValueError(f"no image under {data_dir} is named in tags file {tags_path} (filenames are paths "
                             f"relative to the folder, e.g. {paths[0]!r})")
        paths = [p for p in paths if p in matched]
    images, ok = cached_decode(data_dir, paths, size, cache_dir)
    skipped = int((~ok).sum())
    if skipped:
        example = paths[int(np.flatnonzero(~ok)[0])]
        logging.warning("skipped %d unreadable or non-image file(s) of %d under %s (e.g. %s)", skipped, len(paths),
                        data_dir, example)
    if not ok.any():
        raise ValueError(f"no readable image under {data_dir} ({len(paths)} file(s) tried)")
    out = ImageSet(images=images, skipped=skipped, source=data_dir)
    if tags_path:
        kept = [matched[p] for p, good in zip(paths, ok) if good]
        out.hair_classes = class_names(kept, "hair", hair_classes, tags_path)
        out.eye_classes = class_names(kept, "eye", eye_classes, tags_path)
        hair_index = {c: i for i, c in enumerate(out.hair_classes)}
        eye_index = {c: i for i, c in enumerate(out.eye_classes)}
        out.hair = np.array([hair_index[r.hair] for r in kept], np.int32)
        out.eye = np.array([eye_index[r.eye] for r in kept], np.int32)
    logging.info("loaded %d images (%dx%d) from %s", len(out), size, size, data_dir)
    return out
