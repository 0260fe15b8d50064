"""Datasets: the built-in ``faces`` (rendered once, cached) or any folder of images with optional tags."""

from __future__ import annotations

import os
from typing import Tuple

from gan_anime.config import G_CBN_NEEDS_TAGS, Config, check_data_source
from gan_anime.data.folder import ImageSet, load_folder

#: The built-in faces are always rendered with this seed, so every run trains on the same set.
FACES_SEED = 0


def cache_dir_for(cfg: Config) -> str:
    if cfg.cache_dir:
        return cfg.cache_dir
    from gan_anime.data import faces
    return faces.default_cache_dir()


def load_data(cfg: Config) -> Tuple[ImageSet, Config]:
    """Load the run's images and return them with the config completed from the data
    (conditional or not, class counts and names).  A saved config's class order is kept.
    ``faces_count`` other than its default with ``data_dir`` is a ``ValueError``: it would be ignored."""
    check_data_source(cfg)
    cache = cache_dir_for(cfg)
    if cfg.data_dir is None:
        from gan_anime.data import faces
        root = faces.ensure_faces(cfg.faces_count, seed=FACES_SEED, size=cfg.image_size, cache_dir=cache)
        data = load_folder(root, cfg.image_size, os.path.join(root, "tags.csv"),
                           hair_classes=tuple(faces.HAIR_COLORS), eye_classes=tuple(faces.EYE_COLORS),
                           cache_dir=cache)
        data.source = f"built-in faces ({cfg.faces_count})"
    else:
        data = load_folder(cfg.data_dir, cfg.image_size, cfg.tags,
                           hair_classes=cfg.hair_classes, eye_classes=cfg.eye_classes, cache_dir=cache)
    conditional = data.tagged if cfg.conditional is None else cfg.conditional
    if conditional and not data.tagged:
        raise ValueError("conditional training needs tags: give --tags with a CSV/JSON of filename,hair,eye")
    if cfg.g_cbn and not conditional:
        raise ValueError(G_CBN_NEEDS_TAGS)
    if conditional:
        cfg = cfg.replace(conditional=True, num_hair=len(data.hair_classes), num_eye=len(data.eye_classes),
                          hair_classes=data.hair_classes, eye_classes=data.eye_classes)
    else:
        cfg = cfg.replace(conditional=False, num_hair=0, num_eye=0, hair_classes=(), eye_classes=())
    return data, cfg


__all__ = ["ImageSet", "load_folder", "load_data", "FACES_SEED"]
