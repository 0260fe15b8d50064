"""The training input pipeline: a deterministic function of (data, seed, epoch, step).

Shuffling order depends only on (seed, epoch), flips on (seed, step) and noise on
(seed, step).  Resuming at step k of an epoch therefore replays exactly the
batches an uninterrupted run would have seen, which is what makes resume exact.

One dataset covers every step left in a run, across epochs: the trainer keeps one
iterator for the whole run.  (With one dataset per epoch, destroying the finished
epoch's iterator blocked the training loop for 14-39 s in about half the epochs on a
2-core CPU with TensorFlow 2.21, about a fifth of the training time.)

Each element is one *replica's* slice of a global batch, as
``strategy.distribute_datasets_from_function`` expects: replica r gets rows
``[r*b, (r+1)*b)`` of global batch ``b * replicas``, so a multi-device run sees
the same examples and noise as one device with the same global batch.  An input
pipeline (one per worker) gathers, converts and flips only its own replicas' rows;
the random draws (order, flips, noise) are made for the global batch and cut, so they
are the same as one process's.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

import numpy as np
import tensorflow as tf
from absl import logging

from gan_anime.data.decode import ALIGN
from gan_anime.data.folder import ImageSet

# Offsets that keep the random streams for shuffling, flips and noise apart.
_SHUFFLE_STREAM, _FLIP_STREAM, _NOISE_STREAM = 0, 1, 2
# Sub-streams of the noise stream (folded into its key): the generator update's noise when a step has
# several batches, and the gradient penalty's interpolation weights.
_G_NOISE, _ALPHA = 1, 2


def steps_per_epoch(num_images: int, global_batch: int, batches_per_step: int = 1) -> int:
    """Steps in one pass over ``num_images``: each step takes ``batches_per_step`` global batches
    (one per discriminator update, see :mod:`gan_anime.variants`); the rest of the pass is dropped."""
    steps = num_images // global_batch // batches_per_step
    if steps < 1:
        need = global_batch * batches_per_step
        per = f" x {batches_per_step} critic updates per step" if batches_per_step > 1 else ""
        raise ValueError(f"one step needs {need} images (batch size {global_batch}{per}), more than the dataset's "
                         f"{num_images}; use a smaller --batch-size or more images")
    return steps


def batch_indices(num_images: int, seed: int, epoch, step_in_epoch, global_batch: int):
    """Image indices of one global batch: int64 [global_batch].

    Epoch ``epoch`` visits the images in a pseudorandom permutation fixed by (seed, epoch)
    (``tf.random.experimental.index_shuffle``, so no epoch's order is ever materialised);
    batch k takes positions [k*B, (k+1)*B) of it and the last ``num_images % B`` are
    dropped, as ``drop_remainder`` would.
    """
    positions = tf.cast(step_in_epoch, tf.int64) * global_batch + tf.range(global_batch, dtype=tf.int64)
    key = tf.stack([tf.cast(seed * 3 + _SHUFFLE_STREAM, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.index_shuffle(positions, seed=key, max_index=tf.constant(num_images - 1, tf.int64))


def flip(images, seed, step, rows: Optional[tuple] = None):
    """Random horizontal flip, images float [B, H, W, 3]; stateless so it is replayable.
    rows: (first, total) when ``images`` are rows [first, first + B) of a batch of ``total``: each row
    flips as it would in the whole batch (a worker that builds only its share flips as one process)."""
    first, total = rows if rows is not None else (0, tf.shape(images)[0])
    coin = tf.random.stateless_uniform([total], seed=tf.stack([seed * 3 + _FLIP_STREAM, step]))
    coin = coin[first:first + tf.shape(images)[0]]
    return tf.where(coin[:, None, None, None] < 0.5, tf.reverse(images, axis=[2]), images)


def _noise_key(seed: int, position):
    return tf.stack([tf.cast(seed * 3 + _NOISE_STREAM, tf.int64), tf.cast(position, tf.int64)])


def batch_noise(seed: int, step, global_batch: int, noise_dim: int):
    """Generator noise for batch position ``step``: float32 [global_batch, noise_dim] ~ N(0, 1)."""
    return tf.random.stateless_normal([global_batch, noise_dim], seed=_noise_key(seed, step))


def substream_uniform(seed: int, position, stream: int, shape):
    """float32 U[0, 1) of ``shape`` from sub-stream ``stream`` of batch position ``position``'s noise key."""
    key = tf.random.experimental.stateless_fold_in(_noise_key(seed, position), stream)
    return tf.random.stateless_uniform(shape, seed=key)


def substream_normal(seed: int, position, stream: int, shape):
    key = tf.random.experimental.stateless_fold_in(_noise_key(seed, position), stream)
    return tf.random.stateless_normal(shape, seed=key)


def host_tensor(array: np.ndarray) -> tf.Tensor:
    """A host-memory tensor of ``array`` that shares its memory when TensorFlow allows it (through
    DLPack: a C-contiguous, writeable, 64-byte-aligned array, as :mod:`gan_anime.data.decode` makes;
    a copy-on-write memory map counts as writeable), else a copy.  Sharing keeps a large folder in
    memory once instead of twice; TensorFlow aborts the process on an unaligned shared buffer,
    hence the checks."""
    shareable = (array.size > 0 and array.flags.c_contiguous and array.flags.writeable
                 and array.ctypes.data % ALIGN == 0 and array.dtype in (np.uint8, np.float32, np.int32)
                 and hasattr(tf.experimental, "dlpack"))
    if shareable:
        try:
            return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
        except Exception as e:  # noqa: BLE001 - an older NumPy or TensorFlow: fall back to a copy
            logging.info("sharing the images with TensorFlow failed (%s); copying them", " ".join(str(e).split()))
    return tf.constant(array)


@dataclasses.dataclass(frozen=True)
class DataTensors:
    """An :class:`ImageSet` as tensors: images uint8 [N, S, S, 3], hair and eye int32 [N] (zeros if untagged).

    Made once per training run, in host memory, and shared by the run's input pipelines.
    (When each epoch's dataset made its own ``tf.constant`` of the images, every copy stayed
    alive: memory grew by the image array every epoch, ~120 MB for the 10k built-in faces.)
    """

    images: tf.Tensor
    hair: tf.Tensor
    eye: tf.Tensor

    @classmethod
    def from_images(cls, data: ImageSet) -> "DataTensors":
        """The images tensor shares ``data.images``' memory where it can (:func:`host_tensor`)."""
        zeros = np.zeros(len(data), np.int32)
        with tf.device("/cpu:0"):   # input data stays in host memory, not on a GPU
            return cls(host_tensor(data.images), tf.constant(data.hair if data.tagged else zeros),
                       tf.constant(data.eye if data.tagged else zeros))

    def __len__(self) -> int:
        return int(self.images.shape[0])


def pipeline_rows(global_batch: int, num_replicas: int,
                  input_context: Optional[tf.distribute.InputContext] = None) -> tuple:
    """(first, end) rows of each global batch that input pipeline ``input_context.input_pipeline_id`` (one per
    worker) builds: those of its ``num_replicas / num_input_pipelines`` replicas; (0, global_batch) without one."""
    if input_context is None or input_context.num_input_pipelines == 1:
        return 0, global_batch
    per_pipeline = num_replicas // input_context.num_input_pipelines
    rows = per_pipeline * (global_batch // num_replicas)
    return input_context.input_pipeline_id * rows, (input_context.input_pipeline_id + 1) * rows


def make_dataset(data: Union[ImageSet, DataTensors], *, seed: int, start_step: int, end_step: int,
                 global_batch: int, noise_dim: int, augment: bool, num_replicas: int = 1,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 batches_per_step: int = 1) -> tf.data.Dataset:
    """Per-replica batches for the run's steps ``start_step`` (inclusive) to ``end_step`` (exclusive).

    A run's step p is step ``p % steps_per_epoch`` of epoch ``p // steps_per_epoch``; a run of
    E epochs has steps [0, E * steps_per_epoch).  Step s of an epoch takes the ``k = batches_per_step``
    batches at positions ``s*k .. s*k + k - 1`` of the epoch's order; its batch j draws its noise, flips
    and ``alpha`` from batch position ``p*k + j`` (with k = 1: the step number).
    data: the images; pass :class:`DataTensors` to share one copy between datasets.
    Elements (k = 1): dict(images float32 [b, S, S, 3] in [-1, 1], hair int32 [b], eye int32 [b],
    noise float32 [b, noise_dim], alpha float32 [b] ~ U[0, 1) (gradient-penalty interpolation),
    position int64 [] (the batch position)) with b = global_batch / num_replicas.  With k > 1 each
    of these gets a leading axis [k, ...], and ``g_noise`` float32 [b, noise_dim] is the generator
    update's noise.
    """
    if global_batch % num_replicas:
        raise ValueError(f"batch size {global_batch} must be divisible by the {num_replicas} replicas")
    if not 0 <= start_step <= end_step:
        raise ValueError(f"steps must satisfy 0 <= start_step <= end_step, got {start_step} and {end_step}")
    local = global_batch // num_replicas
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    per_pipeline = num_replicas // pipelines
    lo, hi = pipeline_rows(global_batch, num_replicas, input_context)   # this pipeline's rows of a global batch

    k = batches_per_step
    spe = steps_per_epoch(len(data), global_batch, k)
    tensors = data if isinstance(data, DataTensors) else DataTensors.from_images(data)
    images, hair, eye = tensors.images, tensors.hair, tensors.eye

    def per_replica(batch):
        """This pipeline's rows [lo, hi) -> [replicas of this pipeline, b, ...]; scalars are repeated per replica."""
        chunks = [{key: v if v.shape.rank == 0 else v[r * local:(r + 1) * local] for key, v in batch.items()}
                  for r in range(per_pipeline)]
        return {key: tf.stack([c[key] for c in chunks]) for key in batch}

    def one_batch(epoch, position_in_epoch, position):
        idx = batch_indices(len(data), seed, epoch, position_in_epoch, global_batch)[lo:hi]
        x = tf.cast(tf.gather(images, idx), tf.float32) / 127.5 - 1.0
        if augment:
            x = flip(x, seed, position, rows=(lo, global_batch))
        return per_replica({"images": x, "hair": tf.gather(hair, idx), "eye": tf.gather(eye, idx),
                            "noise": batch_noise(seed, position, global_batch, noise_dim)[lo:hi],
                            "alpha": substream_uniform(seed, position, _ALPHA, [global_batch])[lo:hi],
                            "position": tf.cast(position, tf.int64)})

    def make_batch(step):
        epoch, in_epoch = step // spe, step % spe
        if k == 1:
            return one_batch(epoch, in_epoch, step)
        parts = [one_batch(epoch, in_epoch * k + j, step * k + j) for j in range(k)]
        batch = {key: tf.stack([p[key] for p in parts], axis=1) for key in parts[0]}   # [replicas, k, b, ...]
        g_noise = substream_normal(seed, step * k, _G_NOISE, [global_batch, noise_dim])[lo:hi]
        return {**batch, **per_replica({"g_noise": g_noise})}

    ds = tf.data.Dataset.range(start_step, end_step)
    # One map call per global batch, then one element per replica of this pipeline.  One thread and a
    # small prefetch: tf.data's autotuned thread pool competed with the train step on a 2-core CPU.
    ds = ds.map(make_batch, num_parallel_calls=1, deterministic=True).unbatch()
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    # tf.data's default graph rewrites serialise the dataset, and with it the captured images as a
    # constant: a second copy of the whole image array (measured: +1 copy with them, none without;
    # this pipeline has nothing for them to fuse, and its throughput is unchanged).
    options.experimental_optimization.apply_default_optimizations = False
    return ds.prefetch(2).with_options(options)
