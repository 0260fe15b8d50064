"""FID and KID from FID-Inception pool features.

FID (Heusel et al. 2017): ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` of the two feature sets'
means and covariances.  The trace of the matrix square root is computed as the sum of the square
roots of the eigenvalues of ``S1^(1/2) S2 S1^(1/2)`` (symmetric, so ``eigvalsh`` is exact and stays
real even when the covariances are singular, as they are with fewer than 2,048 images).

KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel
``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets, with its standard deviation over the
subsets (as StyleGAN's and clean-fid's tools report it).

Precision and recall (Kynkaanniemi et al. 2019, "Improved precision and recall metric for assessing
generative models"): each set's manifold is the union of balls around its vectors reaching their
k-th nearest neighbour (k = 3); precision is the share of generated vectors inside the real
manifold (fidelity), recall the share of real vectors inside the generated one (diversity: a
mode-collapsed generator has a low recall at any FID).  The paper uses VGG-16 features; here they
are the same Inception pool features as FID's, the same number a side, at most 5,000 (seeded subsets).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import Iterable, Iterator, Optional

import numpy as np
from absl import logging

from gan_anime.files import atomic_write
from gan_anime.metrics import inception

#: Images per forward pass of the Inception network.
DEFAULT_BATCH = 32


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2.0)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def statistics(features: np.ndarray):
    """(mean [d], covariance [d, d]) of float features [n, d], in float64 (covariance with n - 1)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [n, d] for FID, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*statistics(a), *statistics(b))


def kid_from_features(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0):
    """(mean, std) of the unbiased polynomial-kernel MMD^2 over ``subsets`` random subsets of
    ``min(subset_size, len(a), len(b))`` vectors each."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"need at least 2 images on each side for KID, got {len(a)} and {len(b)}")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1.0) ** 3
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        values[i] = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                     - 2.0 * kxy.mean())
    return float(values.mean()), float(values.std())


#: Nearest neighbours that set a feature vector's radius in precision/recall (the paper's k).
PR_K = 3


def _sq_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [len(x), len(y)] (float32, clipped at 0 against round-off)."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def _kth_radii(x: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """Squared distance of each vector of ``x`` to its k-th nearest other vector of ``x``."""
    radii = np.empty(len(x), np.float32)
    for i in range(0, len(x), chunk):
        d = _sq_distances(x[i:i + chunk], x)
        radii[i:i + chunk] = np.partition(d, k, axis=1)[:, k]     # column 0 is the vector itself (0)
    return radii


def _inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int) -> np.ndarray:
    """bool [len(points)]: inside at least one ball (centre, squared radius)."""
    out = np.empty(len(points), bool)
    for i in range(0, len(points), chunk):
        out[i:i + chunk] = (_sq_distances(points[i:i + chunk], centres) <= radii[None, :]).any(axis=1)
    return out


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_K, max_vectors: int = 5000,
                     seed: int = 0, chunk: int = 1000, balance: bool = True) -> dict:
    """{"precision", "recall"} of ``fake`` against ``real`` feature vectors (k-NN manifolds).

    With ``balance`` both sides are cut to the same number of vectors (a seeded subset; at most
    ``max_vectors``), as in the paper: a k-NN radius grows as its set thins out, so unequal sets would
    tilt the two numbers (e.g. 1,000 generated against 10,000 real faces during training).
    """
    sets = []
    for f in (real, fake):
        f = np.asarray(f)
        if f.ndim != 2 or len(f) <= k:
            raise ValueError(f"need more than k={k} feature vectors [n, d] a side for precision/recall, "
                             f"got shape {f.shape}")
        sets.append(f)
    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake), max_vectors)
    out = []
    for f in sets:
        m = n if balance else min(len(f), max_vectors)
        idx = np.sort(rng.choice(len(f), m, replace=False)) if m < len(f) else slice(None)
        out.append(np.asarray(f[idx], np.float32))
    real, fake = out
    precision = _inside(fake, real, _kth_radii(real, k, chunk), chunk).mean()
    recall = _inside(real, fake, _kth_radii(fake, k, chunk), chunk).mean()
    return {"precision": float(precision), "recall": float(recall)}


def compare_features(a: np.ndarray, b: np.ndarray, kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict:
    """{"fid", "kid", "kid_std", "precision", "recall"} between real features ``a`` and generated ``b``
    (precision and recall None with 3 or fewer vectors a side).

    NumPy's BLAS runs single-threaded here: with its 2 threads on a 2-core machine, OpenBLAS slowed
    about 30x whenever another process held a core (FID of 200 vs 10,000 features: 1.2 s idle, 37 s
    beside another job); one thread took 2.2 s either way.  For 5,000 vs 10,000 features the
    whole computation takes 18 s on one thread (KID's 300 float64 products dominate), 11 s on two.
    """
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        kid, kid_std = kid_from_features(a, b, kid_subsets, kid_subset_size)
        enough = min(len(a), len(b)) > PR_K
        pr = precision_recall(a, b) if enough else {"precision": None, "recall": None}
        return {"fid": fid_from_features(a, b), "kid": kid, "kid_std": kid_std, **pr}


class _Progress:
    """tqdm bar on a terminal; a log line every ~10 s otherwise (CI, files)."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self.start = total, desc, 0, time.time()
        self._last_log = self.start
        self.bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, unit="img", leave=False)
            except ImportError:
                pass

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.time() - self._last_log > 10 or self.done == self.total:
            self._last_log = time.time()
            rate = self.done / max(time.time() - self.start, 1e-9)
            logging.info("%s: %d/%d images, %.1f images/s", self.desc, self.done, self.total, rate)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class FeatureExtractor:
    """FID Inception pool features of uint8 images: ``extractor(images) -> float32 [N, 2048]``.

    images: uint8 [N, H, W, 3] (any H, W; resized to 299 as the reference does), or an iterable
    of such batches.  Runs on the default device (a GPU when TensorFlow sees one).
    """

    def __init__(self, weights: Optional[str] = None, cache_dir: Optional[str] = None,
                 batch_size: int = DEFAULT_BATCH):
        import tensorflow as tf
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
        self.model, self.weights_sha256 = inception.load_network(weights, cache_dir)
        self.batch_size = batch_size
        model = self.model

        def features(x):   # a named function: AutoGraph cannot read a lambda's source and warns
            return model(inception.preprocess(x), training=False)

        self._fn = tf.function(features, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
                               reduce_retracing=True)

    def batches(self, images: np.ndarray) -> Iterator[np.ndarray]:
        for i in range(0, len(images), self.batch_size):
            yield images[i:i + self.batch_size]

    def __call__(self, images, total: Optional[int] = None, desc: str = "inception features") -> np.ndarray:
        if isinstance(images, np.ndarray):
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
            total = len(images)
            images = self.batches(images)
        progress = _Progress(total or 0, desc)
        out = []
        try:
            for batch in images:
                out.append(self._fn(np.ascontiguousarray(batch, np.uint8)).numpy())
                progress.update(len(batch))
        finally:
            progress.close()
        if not out:
            raise ValueError("no images to compute features of")
        return np.concatenate(out).astype(np.float32)


# ---------------------------------------------------------------------------------- cached real features
def images_key(images: np.ndarray) -> str:
    """Identity of an image array: its shape and a hash of its pixels."""
    h = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()[:20]


def cached_features(extractor: FeatureExtractor, images: np.ndarray, cache_dir: str, desc: str) -> tuple:
    """(features, was_cached): the features of ``images``, from ``<cache>/fid_features-<key>.npy`` when
    an earlier call computed them with the same weights (the key covers pixels, shape and weights)."""
    key = f"{images_key(images)}-{extractor.weights_sha256[:12]}"
    path = os.path.join(cache_dir, f"fid_features-{key}.npy")
    if os.path.isfile(path):
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape == (len(images), inception.FEATURE_DIM):
                logging.info("real-image features read from the cache %s", path)
                return feats, True
        except (OSError, ValueError):
            pass
        logging.warning("feature cache %s is unreadable; computing again", path)
    feats = extractor(images, desc=desc)
    atomic_write(path, lambda tmp: np.save(tmp, feats, allow_pickle=False))
    return feats, False


def folder_batches(folder: str, batch_size: int) -> tuple:
    """(total, iterator of uint8 batches) of every image under ``folder``, decoded as the reference
    does (PIL, converted to RGB, at their own size; images of one batch are brought to a common size
    only by the 299-px resize, so each batch holds one size)."""
    from PIL import Image
    from gan_anime.data.folder import list_images
    paths = list_images(folder)
    if not paths:
        raise ValueError(f"no image files under {folder}")

    def gen() -> Iterable[np.ndarray]:
        pending, size = [], None
        for p in paths:
            try:
                with Image.open(os.path.join(folder, p)) as im:
                    arr = np.asarray(im.convert("RGB"), np.uint8)
            except Exception as e:  # noqa: BLE001 - name the file, never a traceback
                raise ValueError(f"cannot read image {os.path.join(folder, p)}: {e}") from None
            if pending and (arr.shape != size or len(pending) == batch_size):
                yield np.stack(pending)
                pending = []
            pending.append(arr)
            size = arr.shape
        if pending:
            yield np.stack(pending)
    return len(paths), gen()


def folder_features(extractor: FeatureExtractor, folder: str) -> np.ndarray:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder} does not exist")
    total, batches = folder_batches(folder, extractor.batch_size)
    return extractor(batches, total=total, desc=os.path.basename(os.path.normpath(folder)) or folder)
