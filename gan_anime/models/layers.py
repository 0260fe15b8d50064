"""Building blocks shared by the generator and the discriminator."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

# DCGAN paper: weights from N(0, 0.02).
def dcgan_init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def batch_norm(name=None):
    """Batch norm whose statistics span the *global* batch under ``tf.distribute``.

    Plain ``BatchNormalization`` normalises each replica's slice on its own, so two
    GPUs would train a different model than one; ``synchronized=True`` all-reduces
    the moments and matches a single device.  Momentum 0.9 lets the moving
    statistics (used by ``generate``) keep up with a fast-changing generator.
    """
    return keras.layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5, name=name)


class MinibatchStddev(keras.layers.Layer):
    """Appends the mean per-feature standard deviation over groups of samples (Karras et al. 2018).

    x: float [B, H, W, C] -> [B, H, W, C + 1].  The discriminator then sees how
    varied a batch is, which pushes the generator away from mode collapse.  Groups
    are consecutive samples, so a global batch split across replicas forms the
    same groups as on one device when the per-replica batch is a multiple of the
    group size.
    """

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.group_size = int(group_size)

    def call(self, x):
        batch = x.shape[0]
        if batch is None:
            group = self.group_size
        else:
            group = math.gcd(self.group_size, int(batch))
        shape = tf.shape(x)
        h, w, c = shape[1], shape[2], shape[3]
        # [B/group, group, ...]: groups are runs of consecutive samples (see class docstring).
        y = tf.reshape(tf.cast(x, tf.float32), [-1, group, h, w, c])
        y = y - tf.reduce_mean(y, axis=1, keepdims=True)
        y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=1) + 1e-8)   # [B/group, H, W, C]
        y = tf.reduce_mean(y, axis=[1, 2, 3], keepdims=True)          # [B/group, 1, 1, 1]
        y = tf.tile(tf.repeat(y, group, axis=0), [1, h, w, 1])        # [B, H, W, 1]
        return tf.concat([x, tf.cast(y, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


def up_block(filters: int, upsample: str, name: str):
    """Doubles the resolution: a 4x4 stride-2 transposed conv (DCGAN) or nearest upsample + 3x3 conv."""
    if upsample == "transpose":
        return [keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                                             kernel_initializer=dcgan_init(), name=f"{name}_deconv")]
    return [keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up"),
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_initializer=dcgan_init(), name=f"{name}_conv")]


def num_blocks(image_size: int) -> int:
    """Resolution-doubling blocks between the 4x4 seed and ``image_size``."""
    n = int(round(math.log2(image_size))) - 2
    if n < 2 or 4 * 2 ** n != image_size:
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    return n
