"""Memory and speed of loading a large image folder: one JSON line.

    .venv/bin/python benchmarks/large_folder.py [--count 63000] [--size 64] [--broken 20] [--workers 2]
                                                 [--dir DIR] [--keep]

Generates ``--count`` small JPEGs (``--size`` px: a smooth colour gradient and a few ellipses, image i
a function of (seed, i); ~1.5 KB each at 64 px) into a temporary folder — spread over the subfolders
and joined by the kinds of broken files that ``make_folder.py`` writes — then loads the folder through
the library in a fresh process, the way training does (``load_folder`` with a decode cache,
``DataTensors.from_images``, a few batches of ``make_dataset``), and a second time from the cache.
Prints one JSON line: the images, one decoded copy's MB, the process's memory before loading and at
its peak (VmHWM; ``ru_maxrss`` agrees), the peak growth in decoded copies, load time and images/s,
the cached load's time and peak growth, the CPU.  ``--dir DIR`` loads an existing folder instead;
the generated folder and the cache are deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_folder import SUBDIRS, broken_file  # noqa: E402  (the same layout and broken files)

JPEG_QUALITY = 90


def synthetic_jpeg(index: int, seed: int, size: int) -> bytes:
    """JPEG bytes of image ``index``: a gradient between two random colours and three ellipses."""
    rng = np.random.default_rng([seed, index])
    a, b = rng.integers(0, 256, (2, 3))
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    img = Image.fromarray(np.broadcast_to(a + (b - a) * t, (size, size, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        draw.ellipse((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    import io
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _write_chunk(args) -> int:
    out, seed, size, lo, hi = args
    for i in range(lo, hi):
        path = os.path.join(out, SUBDIRS[i % len(SUBDIRS)], f"{i:06d}.jpg")
        with open(path, "wb") as f:
            f.write(synthetic_jpeg(i, seed, size))
    return hi - lo


def make_jpegs(out: str, count: int, size: int = 64, seed: int = 0, broken: int = 20, workers: int = 2) -> None:
    """Write ``count`` synthetic JPEGs and ``broken`` broken files (make_folder.py's kinds) under ``out``."""
    for sub in SUBDIRS:
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    chunks = [(out, seed, size, lo, min(lo + 500, count)) for lo in range(0, count, 500)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_write_chunk, chunks):
            pass
    for k in range(broken):
        name, _, data = broken_file(k, count, seed)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux: /proc/self/clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(data_dir: str, size: int, cache_dir: str, batches: int = 4) -> dict:
    """In this process: load ``data_dir`` as training does and report memory and time."""
    import resource
    import tensorflow as tf
    from absl import logging
    logging.set_verbosity(logging.INFO)        # the decode's progress and images/s lines (stderr)
    from gan_anime.data.folder import load_folder
    from gan_anime.data.pipeline import DataTensors, make_dataset
    tf.constant(0) + 1                         # TensorFlow's runtime is up before the baseline
    before = _status_mb("VmRSS")
    reset = _reset_peak()
    start = time.perf_counter()
    data = load_folder(data_dir, size, cache_dir=cache_dir)
    load_s = time.perf_counter() - start
    tensors = DataTensors.from_images(data)
    for _ in make_dataset(tensors, seed=0, start_step=0, end_step=batches, global_batch=64, noise_dim=8,
                          augment=True):
        pass
    peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    copy_mb = data.images.nbytes / 2 ** 20
    return {"images": len(data), "skipped": data.skipped, "load_s": round(load_s, 2),
            "images_per_s": round((len(data) + data.skipped) / load_s), "copy_mb": round(copy_mb, 1),
            "rss_before_mb": round(before), "peak_rss_mb": round(peak),
            "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "growth_copies": round((peak - before) / copy_mb, 2)}


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _measure_in_child(data_dir: str, size: int, cache_dir: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.path.dirname(HERE) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", data_dir, "--size", str(size),
                          "--cache-dir", cache_dir], env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"large_folder.py: measuring failed (exit {out.returncode})")
    sys.stderr.write("".join(l for l in out.stderr.splitlines(keepends=True) if "decod" in l))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=63000, help="JPEGs to generate (default 63000)")
    p.add_argument("--size", type=int, default=64, help="their side and the training size (default 64)")
    p.add_argument("--broken", type=int, default=20, help="broken files to add (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes generating the JPEGs (default 2)")
    p.add_argument("--dir", help="load this existing folder instead of generating one")
    p.add_argument("--keep", action="store_true", help="keep the generated folder and the cache")
    p.add_argument("--measure", help=argparse.SUPPRESS)       # the child process: load and report
    p.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.size, args.cache_dir)))
        return 0
    if args.count < 1 or args.size < 8:
        p.error("--count must be >= 1 and --size >= 8")
    work = tempfile.mkdtemp(prefix="gan_anime-large-")
    try:
        data_dir = args.dir or os.path.join(work, "images")
        generate_s = None
        if not args.dir:
            start = time.perf_counter()
            make_jpegs(data_dir, args.count, args.size, args.seed, args.broken, args.workers)
            generate_s = round(time.perf_counter() - start, 1)
        cache = os.path.join(work, "cache")
        first = _measure_in_child(data_dir, args.size, cache)
        cached = _measure_in_child(data_dir, args.size, cache)
        print(json.dumps({**first, "size": args.size, "generate_s": generate_s, "cached_load_s": cached["load_s"],
                          "cached_peak_rss_mb": cached["peak_rss_mb"], "cached_growth_copies": cached["growth_copies"],
                          "cpu": _cpu(), "cores": os.cpu_count()}), flush=True)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
