"""Does a run's discriminator memorise its training images?  D's mean output on training faces against
held-out ones, at one or more checkpoints.

    python benchmarks/d_memorisation.py runs/presets-S-bf16/S3 runs/presets-S-bf16/levels/ckpt-42500

A discriminator that memorises scores the images it was trained on higher than unseen ones of the same
kind: then more (or augmented) data is the lever.  Equal scores say the data is not what holds the
generator back.  Built-in-faces runs only (the held-out faces are rendered with another seed, as the
sweep's FID reference).  Prints one JSON line per checkpoint: mean logit and mean D(x) = sigmoid(logit)
on ``--count`` training and ``--count`` held-out faces, with their labels on a conditional run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]


def scores(d, images, hair, eye, batch: int = 100):
    """Mean logit and mean sigmoid of D over uint8 ``images`` [N, S, S, 3] (labels None when unconditional)."""
    import numpy as np
    import tensorflow as tf
    logits = []
    for k in range(0, len(images), batch):
        x = tf.cast(images[k:k + batch], tf.float32) / 127.5 - 1.0
        labels = None if hair is None else (tf.constant(hair[k:k + batch]), tf.constant(eye[k:k + batch]))
        logits.append(np.asarray(d(x, labels)))
    z = np.concatenate(logits).astype(np.float64)
    return {"logit": round(float(z.mean()), 4), "d": round(float((1.0 / (1.0 + np.exp(-z))).mean()), 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("checkpoints", nargs="+", help="checkpoint paths (…/ckpt-N)")
    p.add_argument("--count", type=int, default=2000, help="faces of each kind (2000)")
    p.add_argument("--cache-dir", default=None)
    args = p.parse_args(argv)
    from gan_anime.config import Config
    cfg = Config.load(os.path.join(args.run_dir, "config.json"))
    if cfg.data_dir is not None:
        p.error(f"{args.run_dir} trained on a folder; this check compares built-in faces")
    import tensorflow as tf
    from gan_anime.data import faces
    from gan_anime.data.folder import load_folder
    from gan_anime.models import build_models
    from sweep import heldout_faces
    root = faces.ensure_faces(cfg.faces_count, size=cfg.image_size, cache_dir=args.cache_dir)
    train = load_folder(root, cfg.image_size, os.path.join(root, "tags.csv"), hair_classes=cfg.hair_classes,
                        eye_classes=cfg.eye_classes, cache_dir=args.cache_dir)
    held = heldout_faces(args.count, cfg.image_size, args.cache_dir)
    _, d = build_models(cfg)
    sets = {}
    for name, data in (("train", train), ("heldout", held)):
        n = min(args.count, len(data.images))
        labels = (data.hair[:n], data.eye[:n]) if cfg.conditional else (None, None)
        sets[name] = (data.images[:n], *labels)
    d(tf.zeros([2, cfg.image_size, cfg.image_size, 3]),
      (tf.zeros([2], tf.int32), tf.zeros([2], tf.int32)) if cfg.conditional else None)
    for path in args.checkpoints:
        tf.train.Checkpoint(discriminator=d).restore(path).expect_partial()
        print(json.dumps({"checkpoint": path, **{k: scores(d, *v) for k, v in sets.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
