"""Decoding a folder's images into one uint8 array, once, and the on-disk cache of that array.

Memory stays near one decoded copy (63,000 images at 64 px: 774 MB): the files are decoded by a
pool of threads (Pillow releases the GIL) straight into their rows of one preallocated array —
with a cache directory, a memory-mapped ``.npy`` in it — unreadable files are compacted away in
place, and the array is 64-byte aligned so the training pipeline can share it rather than copy it
(:func:`gan_anime.data.pipeline.host_tensor`).  A later run maps the cached file copy-on-write:
its pages are the page cache's, read as training touches them.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import io
import json
import os
import time
import zlib
from typing import Optional, Sequence, Tuple

import numpy as np
from absl import logging
from PIL import Image, ImageFile

from gan_anime.files import atomic_write, write_text

#: Bumped when the decoded pixels or the cache's layout change (2: a memory-mapped .npy + .json).
CACHE_VERSION = 2
#: Byte alignment of the arrays handed to TensorFlow (Eigen's largest, AVX-512).
ALIGN = 64
#: Seconds between progress lines while decoding (and at most one line per 10% done).
PROGRESS_SECONDS = 5.0


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


def aligned_empty(shape: Tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``ALIGN``-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + ALIGN, np.uint8)
    start = (-buf.ctypes.data) % ALIGN
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def _read(path: str, size: int) -> Optional[np.ndarray]:
    try:
        with open(path, "rb") as f:
            return load_image(f.read(), size)
    except OSError:
        return None


def decode_into(out: np.ndarray, data_dir: str, paths: Sequence[str], size: int,
                workers: Optional[int] = None) -> np.ndarray:
    """Decode ``paths`` (relative to ``data_dir``) into ``out`` uint8 [N, size, size, 3]; return ok bool [N].

    The readable images end up in ``out[:ok.sum()]``, in the order of ``paths`` (the unreadable ones'
    rows are compacted away in place, so no second array is made).  Logs progress every
    ``PROGRESS_SECONDS`` (and 10%) and the throughput at the end.  ``workers``: decoding threads
    (default: one per CPU this process may use, at least 2).
    """
    n = len(paths)
    ok = np.zeros(n, bool)
    start = last = time.perf_counter()
    logged = 0

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            img = _read(os.path.join(data_dir, paths[i]), size)
            if img is not None:
                out[i] = img
                ok[i] = True

    chunk = 64
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
        workers = max(2, cpus)
    done = 0
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="gan_anime-decode") as pool:
        futures = [pool.submit(work, lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
        try:
            for lo, fut in zip(range(0, n, chunk), futures):
                fut.result()
                done = min(lo + chunk, n)
                now = time.perf_counter()
                if now - last >= PROGRESS_SECONDS and done - logged >= n / 10 and done < n:
                    logging.info("decoding %s: %d/%d images (%.0f%%), %.0f images/s", data_dir, done, n,
                                 100 * done / n, done / (now - start))
                    last, logged = now, done
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    good = np.flatnonzero(ok)
    for dst, src in enumerate(good):   # row by row: source and destination never overlap
        if dst != src:
            out[dst] = out[src]
    elapsed = time.perf_counter() - start
    logging.info("decoded %d images (%d unreadable) under %s at %dx%d in %.1f s: %.0f images/s", len(good),
                 n - len(good), data_dir, size, size, elapsed, n / max(elapsed, 1e-9))
    return ok


def decode_all(data_dir: str, paths: Sequence[str], size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Decode without a cache: (images uint8 [K, S, S, 3], the K readable ones in order, ok bool [N])."""
    images = aligned_empty((len(paths), size, size, 3))
    ok = decode_into(images, data_dir, paths, size)
    return images[:int(ok.sum())], ok


# ----------------------------------------------------------------------------------------- cache
def cache_key(data_dir: str, paths: Sequence[str], size: int) -> str:
    h = hashlib.sha1(f"{CACHE_VERSION}|{os.path.abspath(data_dir)}|{size}".encode())
    for p in paths:
        st = os.stat(os.path.join(data_dir, p))
        h.update(f"|{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _checksum(images: np.ndarray) -> int:
    return zlib.crc32(memoryview(images).cast("B")) if images.size else 0


def _open_cached(stem: str, n: int, size: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The cache ``stem``.npy/.json if complete and intact, mapped copy-on-write; else None."""
    if not (os.path.isfile(stem + ".json") and os.path.isfile(stem + ".npy")):
        return None
    try:
        with open(stem + ".json") as f:
            info = json.load(f)
        ok = np.ones(n, bool)
        ok[np.asarray(info["unreadable"], np.int64)] = False
        images = np.load(stem + ".npy", mmap_mode="c")
        good = int(ok.sum())
        if (info.get("version") != CACHE_VERSION or images.shape != (n, size, size, 3) or images.dtype != np.uint8
                or _checksum(images[:good]) != info["crc32"]):
            raise ValueError("does not match its description")
        return images[:good], ok
    except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
        logging.warning("image cache %s.npy is unreadable (%s); decoding again", stem, " ".join(str(e).split()))
        return None


def cached_decode(data_dir: str, paths: Sequence[str], size: int,
                  cache_dir: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`decode_all` through the cache in ``cache_dir`` (None: no cache): the array is decoded into
    a memory-mapped ``folder-<key>.npy`` there and described by ``folder-<key>.json``, written last."""
    if cache_dir is None:
        return decode_all(data_dir, paths, size)
    stem = os.path.join(cache_dir, f"folder-{cache_key(data_dir, paths, size)}")
    cached = _open_cached(stem, len(paths), size)
    if cached is not None:
        logging.info("using decoded images cached in %s.npy", stem)
        return cached
    result = {}

    def write(tmp: str) -> None:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
        _reserve(tmp)
        ok = decode_into(images, data_dir, paths, size)
        images.flush()
        result.update(ok=ok, crc32=_checksum(images[:int(ok.sum())]))
        del images   # unmapped: this process keeps no dirty copy; the reader below maps the file again

    try:
        atomic_write(stem + ".npy", write)
        ok = result["ok"]
        write_text(stem + ".json", json.dumps({"version": CACHE_VERSION, "count": len(paths), "size": size,
                                               "unreadable": np.flatnonzero(~ok).tolist(),
                                               "crc32": result["crc32"]}))
    except OSError as e:   # a read-only or full cache directory: train all the same, from memory
        logging.warning("cannot write the decoded-image cache %s.npy (%s); decoding into memory instead", stem,
                        " ".join(str(e).split()))
        return decode_all(data_dir, paths, size)
    images = np.load(stem + ".npy", mmap_mode="c")
    return images[:int(ok.sum())], ok


def _reserve(path: str) -> None:
    """Allocate the whole (sparse) file now: writing a memory map on a full disk is a SIGBUS that kills
    the process, while this raises ``OSError`` (ENOSPC) that :func:`cached_decode` handles."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise
            # a file system without fallocate: go on (a full disk then is the kernel's to report)
