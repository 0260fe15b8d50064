"""Evaluate a run (FID, KID, tag accuracy) or compare two image folders.

>>> import gan_anime
>>> gan_anime.evaluate("runs/demo", num_samples=5000)       # {"fid": ..., "kid": ..., "step": ..., ...}
>>> gan_anime.compare_folders("real/", "fake/")             # {"fid": ..., "kid": ..., "kid_std": ...}

Generated images come from the run's EMA generator at its latest checkpoint, rounded to uint8 as
they would be saved, so evaluating a run equals comparing a folder of its PNGs with the training
images.  Conditional runs draw (hair, eye) pairs from the training data's tag distribution.
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional

import numpy as np
from absl import logging

from gan_anime.files import write_text
from gan_anime.metrics.fid import (DEFAULT_BATCH, FeatureExtractor, cached_features, compare_features,
                                   folder_features)

#: Generated images per evaluation (StyleGAN's fid50k uses 50,000; 5,000 keeps a CPU evaluation short).
DEFAULT_SAMPLES = 5000
#: Seed stream of the evaluation's noise and labels: apart from training (seed) and sample grids.
EVAL_SEED = 1_000_003


def _positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def checkpoint_step(checkpoint: str) -> int:
    import tensorflow as tf
    return int(tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def sample_labels(data, n: int, seed: int):
    """(hair, eye) int32 [n]: pairs of real images drawn at random, i.e. the data's joint tag distribution."""
    idx = np.random.default_rng([seed, 7]).integers(0, len(data), size=n)
    return data.hair[idx].astype(np.int32), data.eye[idx].astype(np.int32)


def generate_for_eval(generator, cfg, n: int, seed: int, labels=None, batch_size: int = 64,
                      truncation: Optional[float] = None) -> np.ndarray:
    """uint8 [n, S, S, 3] from ``generator`` (of a run with config ``cfg``): noise by ``seed`` (truncated at
    ``truncation``, see :func:`gan_anime.inference.truncate_noise`), labels as given (or none)."""
    from gan_anime.inference import generator_inputs, run_generator, truncate_noise
    noise, _ = generator_inputs(cfg.replace(conditional=False), n, seed)
    return run_generator(generator, truncate_noise(noise, truncation), labels, batch_size=batch_size)


def evaluate(run_dir: str, num_samples: int = DEFAULT_SAMPLES, batch_size: int = DEFAULT_BATCH, *,
             weights: Optional[str] = None, cache_dir: Optional[str] = None, tags: bool = True,
             extractor: Optional[FeatureExtractor] = None, data=None, log: bool = True,
             seed: int = EVAL_SEED, checkpoint: Optional[str] = None, truncation: Optional[float] = None) -> dict:
    """FID and KID of ``num_samples`` generated images against the run's training images (or ``data``,
    e.g. held-out images), plus per-tag accuracy for conditional runs; appended as one JSON line to
    ``<run>/logs/metrics.jsonl`` when ``log``.  Real-image features are cached per dataset (pixels,
    resolution and weights).  ``checkpoint``: a checkpoint path of the run (default: its latest).
    ``truncation``: generate with the noise kept within +-truncation (the result says so)."""
    import gan_anime
    from gan_anime.inference import check_truncation
    from gan_anime.data import cache_dir_for, load_data
    num_samples = _positive("num_samples", num_samples, 2)
    batch_size = _positive("batch_size", batch_size)
    truncation = check_truncation(truncation)   # a bad value fails before any work
    start = time.time()
    run = gan_anime.load(run_dir, checkpoint)
    cfg = run.config
    cache = cache_dir or cache_dir_for(cfg)
    if data is None:
        data, _ = load_data(cfg)
    extractor = extractor or FeatureExtractor(weights, cache, batch_size)
    real, was_cached = cached_features(extractor, data.images, cache, desc="real images")
    labels = sample_labels(data, num_samples, seed) if cfg.conditional else None
    t = time.time()
    fake_images = generate_for_eval(run.generator, cfg, num_samples, seed, labels, truncation=truncation)
    generate_s = time.time() - t
    t = time.time()
    fake = extractor(fake_images, desc="generated images")
    features_s = time.time() - t
    result = {"step": checkpoint_step(run.checkpoint), "checkpoint": os.path.basename(run.checkpoint),
              **compare_features(real, fake), "num_samples": num_samples, "num_real": len(data),
              "real_features_cached": was_cached,
              "generated_images_per_s": round(num_samples / max(features_s, 1e-9), 2)}
    if truncation is not None:
        result["truncation"] = truncation
    if cfg.conditional and tags:
        from gan_anime.metrics.tags import get_tag_classifier, tag_accuracy
        classifier = get_tag_classifier(data, cache)
        result["tags"] = tag_accuracy(classifier, fake_images, labels[0], labels[1])
    result["seconds"] = round(time.time() - start, 1)
    logging.info("evaluated %s at step %d: FID %.2f, KID %.4f (generation %.1f s, features %.1f s)",
                 run_dir, result["step"], result["fid"], result["kid"], generate_s, features_s)
    if log:
        append_metrics(run_dir, result)
    return result


def metrics_path(run_dir: str) -> str:
    return os.path.join(run_dir, "logs", "metrics.jsonl")


def drop_training_metrics_after(run_dir: str, step: int) -> None:
    """Remove the lines --fid-every wrote after ``step`` (a resumed run replays those steps), atomically."""
    path = metrics_path(run_dir)
    if not os.path.isfile(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue   # a line cut by a kill: drop it
        if not (record.get("during_training") and record.get("step", 0) > step):
            kept.append(line)
    if kept != lines:
        write_text(path, "".join(kept))


def append_metrics(run_dir: str, record: dict) -> str:
    """Append one JSON line to ``<run>/logs/metrics.jsonl`` (the line is written whole, flushed)."""
    path = metrics_path(run_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}, sort_keys=False) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()
    return path


def compare_folders(dir_a: str, dir_b: str, batch_size: int = DEFAULT_BATCH, *, weights: Optional[str] = None,
                    cache_dir: Optional[str] = None, extractor: Optional[FeatureExtractor] = None) -> dict:
    """FID and KID between every image under ``dir_a`` and every image under ``dir_b``."""
    for d in (dir_a, dir_b):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"image folder {d} does not exist")
    batch_size = _positive("batch_size", batch_size)
    start = time.time()
    extractor = extractor or FeatureExtractor(weights, cache_dir, batch_size)
    a = folder_features(extractor, dir_a)
    b = folder_features(extractor, dir_b)
    return {**compare_features(a, b), "num_a": len(a), "num_b": len(b), "seconds": round(time.time() - start, 1)}
