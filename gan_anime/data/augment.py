"""DiffAugment: differentiable augmentation of everything the discriminator sees.

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training" (arXiv:2006.10738).
The same kind of random transform is applied to real *and* generated images before D, and because
every transform is differentiable, G is trained through it.  D then cannot memorise a small
dataset, which is what lets a GAN train on a few thousand faces.

The three policies and their ranges are those of the official TensorFlow implementation
(mit-han-lab/data-efficient-gans, ``DiffAugment_tf.py``), which works on images in [-1, 1] like
this package, so its magnitudes apply unchanged:

- ``color``: brightness ``x + b`` with b ~ U[-0.5, 0.5); saturation ``m + s (x - m)`` with
  m the per-pixel mean over channels and s ~ U[0, 2); contrast ``M + c (x - M)`` with M the
  per-image mean and c ~ U[0.5, 1.5); one draw of each per sample, applied in that order.
  Values can leave [-1, 1] (brightness alone reaches +-1.5), as in the original.
- ``translation``: shift by whole pixels, dy in [-H//8, H//8] and dx in [-W//8, W//8]
  (uniform integers, per sample), filling with zeros.
- ``cutout``: zero a (H//2) x (W//2) rectangle (a square for square images) centred at a
  uniform pixel of [0, H] x [0, W] (per sample; [0, H-1] for an odd size, as the original); the
  part of it outside the image is dropped, so between a quarter and all of it is visible.

Differences from the original, by design: the randomness is stateless, a function of a seed
tensor [2] only (``tf.random.stateless_uniform``), so a train step that derives the seed from
(run seed, step) replays exactly after a resume; each policy draws from its own stream, so adding
or removing a policy does not change the others' draws; and uniform floats are built from uniform
integers, because TensorFlow's stateless float draws differ between XLA and the plain kernels on
one CPU while the integer draws agree (TF 2.21), so ``jit_compile`` does not change the pixels.

All functions take images float [B, H, W, C] (C = 3 for ``color``) and return the same shape and
dtype.  Translation and cutout are gathers and masks, so gradients flow to the input pixels that
are kept; every policy works inside ``tf.function`` and with ``jit_compile=True``.
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple, Union

import tensorflow as tf

from gan_anime.data.policies import POLICY_NAMES, parse_policy

# Stream ids per policy name (not per position): "translation" draws the same shifts whether or not
# "color" comes before it.  Never renumber: that would change the augmentations of every seed.
_STREAMS = {"color": 1, "translation": 2, "cutout": 3}

_FLOAT_BITS = 24   # float32 holds every multiple of 2**-24 in [0, 1) exactly


def _uniform(shape, seed):
    """float32 U[0, 1) in steps of 2**-24 from stateless *integer* draws (identical with and without XLA)."""
    bits = tf.random.stateless_uniform(shape, seed, minval=0, maxval=1 << _FLOAT_BITS, dtype=tf.int32)
    return tf.cast(bits, tf.float32) * (1.0 / (1 << _FLOAT_BITS))


def _randint(shape, seed, low, high):
    """int32 uniform in [low, high) (``high`` exclusive), stateless."""
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high, dtype=tf.int32)


def _substream(seed, index: int):
    """An independent seed [2] for stream ``index``: a hash of (seed, index), kept non-negative.

    Stateless draws from a *negative* seed differ between XLA and the plain kernels (TF 2.21, CPU).
    """
    return tf.bitwise.bitwise_and(tf.random.experimental.stateless_fold_in(seed, index), 0x7FFFFFFF)


def _dims(images):
    """(B, H, W): Python ints where the static shape knows them, else scalar int32 tensors."""
    dynamic = tf.shape(images)
    return tuple(images.shape[i] if images.shape[i] is not None else dynamic[i] for i in range(3))


def _per_sample(values, dtype):
    return tf.cast(tf.reshape(values, [-1, 1, 1, 1]), dtype)


# ---------------------------------------------------------------- deterministic transforms
def brightness(images, amount):
    """images + amount, amount float [B] (one offset per sample)."""
    return images + _per_sample(amount, images.dtype)


def saturation(images, factor):
    """Scales each pixel's deviation from its mean over channels by factor float [B] (0: grey)."""
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    return (images - mean) * _per_sample(factor, images.dtype) + mean


def contrast(images, factor):
    """Scales each image's deviation from its mean (over pixels and channels) by factor float [B]."""
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * _per_sample(factor, images.dtype) + mean


def translate(images, shift_y, shift_x):
    """Moves each image's content down by shift_y and right by shift_x pixels (int [B], may be negative).

    ``out[b, i, j] = images[b, i - shift_y[b], j - shift_x[b]]`` where that pixel exists, else 0.
    Two batched gathers, so the gradient reaches exactly the pixels that stay in the image.
    """
    _, h, w = _dims(images)

    def source(size, shift):
        index = tf.range(size, dtype=tf.int32)[None, :] - tf.reshape(tf.cast(shift, tf.int32), [-1, 1])  # [B, size]
        inside = (index >= 0) & (index < size)
        return tf.clip_by_value(index, 0, size - 1), inside

    rows, rows_inside = source(h, shift_y)
    cols, cols_inside = source(w, shift_x)
    out = tf.gather(images, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    inside = rows_inside[:, :, None, None] & cols_inside[:, None, :, None]
    return tf.where(inside, out, tf.zeros_like(out))


def cutout(images, center_y, center_x, size_y: int, size_x: int):
    """Zeroes rows [cy - size_y//2, cy - size_y//2 + size_y) x the same for columns, per sample.

    center_y, center_x: int [B]; the rectangle is clipped to the image.
    """
    _, h, w = _dims(images)

    def band(size, center, extent):
        start = tf.reshape(tf.cast(center, tf.int32), [-1, 1]) - extent // 2
        index = tf.range(size, dtype=tf.int32)[None, :]
        return (index >= start) & (index < start + extent)   # [B, size]

    hole = band(h, center_y, size_y)[:, :, None, None] & band(w, center_x, size_x)[:, None, :, None]
    return tf.where(hole, tf.zeros_like(images), images)


# ---------------------------------------------------------------- random policies
def _color(images, seed):
    batch = _dims(images)[0]
    x = brightness(images, _uniform([batch], _substream(seed, 0)) - 0.5)
    x = saturation(x, _uniform([batch], _substream(seed, 1)) * 2.0)
    return contrast(x, _uniform([batch], _substream(seed, 2)) + 0.5)


def _translation(images, seed, ratio: int = 8):
    batch, h, w = _dims(images)
    max_y, max_x = h // ratio, w // ratio
    shift_y = _randint([batch], _substream(seed, 0), -max_y, max_y + 1)
    shift_x = _randint([batch], _substream(seed, 1), -max_x, max_x + 1)
    return translate(images, shift_y, shift_x)


def _cutout(images, seed, ratio: int = 2):
    batch, h, w = _dims(images)
    size_y, size_x = h // ratio, w // ratio
    center_y = _randint([batch], _substream(seed, 0), 0, h + (1 - size_y % 2))
    center_x = _randint([batch], _substream(seed, 1), 0, w + (1 - size_x % 2))
    return cutout(images, center_y, center_x, size_y, size_x)


POLICIES: Dict[str, Callable] = {"color": _color, "translation": _translation, "cutout": _cutout}
assert tuple(POLICIES) == POLICY_NAMES, "policies.POLICY_NAMES lists the policies defined here"


def _check_seed(seed):
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        raise TypeError(f"seed must be an int32/int64 tensor of shape [2], got dtype {seed.dtype.name}")
    if not seed.shape.is_compatible_with([2]):
        raise ValueError(f"seed must have shape [2], got {seed.shape}")
    if seed.dtype == tf.int32:
        # Read the 32 bits as unsigned: a one-to-one map onto non-negative int64 (see _substream).
        seed = tf.cast(tf.bitcast(seed, tf.uint32), tf.int64)
    return seed


def diff_augment(images, policy: Union[str, Sequence[str]], seed):
    """DiffAugment of a batch: the policies in order, each with its own stream derived from ``seed``.

    images: float [B, H, W, 3], nominally in [-1, 1].
    policy: names from :data:`POLICIES` as ``"color,translation,cutout"`` or a sequence; '' for none.
    seed: int32/int64 [2], e.g. ``tf.stack([run_seed, step])``; the output is a deterministic
      function of (images, policy, seed), the same with and without XLA (for int64 seeds: if
      non-negative).  Real and fake batches should get different seeds (or be
      augmented as one concatenated batch) unless the same transforms are wanted for both.
    Returns float [B, H, W, 3] of the input dtype, differentiable w.r.t. ``images``.
    """
    names = parse_policy(policy)
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise TypeError(f"images must be floating point in [-1, 1], got dtype {images.dtype.name}")
    if images.shape.rank is not None and images.shape.rank != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
    if not names:
        return images
    seed = _check_seed(seed)
    for name in names:
        images = POLICIES[name](images, _substream(seed, _STREAMS[name]))
    return images
