"""DCGAN generator and discriminator (Radford et al. 2016), optionally conditional on hair and eye colour.

Conditioning: the generator gets one-hot hair and eye labels appended to the noise (and with ``cbn`` also
as the scale and offset of every batch norm).  The discriminator either uses projection
(``heads="projection"``, Miyato & Koyama 2018): one learned embedding per class, dotted with the
discriminator's features and added to the logit; or classifier heads (``heads="classifier"``, ACGAN,
Odena et al. 2017): it takes no labels and predicts hair and eye classes beside its real/fake logit.
"""

from __future__ import annotations

from typing import Optional, Tuple

import keras
import tensorflow as tf

from gan_anime.models.layers import (LabelledChain, MinibatchStddev, ResidualConv, SelfAttention, SkipExcitation,
                                     batch_norm, call_with_labels, conv3x3, dcgan_init, g_norm, num_blocks,
                                     spectral_norm, up_block)

Labels = Optional[Tuple[tf.Tensor, tf.Tensor]]


class Generator(keras.Model):
    """z: float32 [B, noise_dim] (+ labels (hair [B] int32, eye [B] int32)) -> images float32 [B, S, S, 3] in [-1, 1].

    Labels may also be float vectors (hair [B, num_hair], eye [B, num_eye]): one-hot or a mix of
    classes, as an interpolation between two faces' tags feeds them.

    4x4 seed with ``width * 2**(n-1)`` channels, then ``n = log2(S) - 2`` blocks that
    double the resolution and halve the channels (batch norm + ReLU), the last one
    to RGB with tanh.  ``depth`` > 1 adds ``depth - 1`` 3x3 convolutions (batch norm + ReLU)
    after each upsampling but the last; ``residual`` makes each of them a residual block,
    ``relu(x + bn(conv(x)))`` (He et al. 2016), at no extra arithmetic.  ``out_width`` > 0: the last
    upsampling makes ``out_width`` channels (batch norm + ReLU) and a 3x3 convolution draws RGB from
    them, instead of upsampling straight to RGB.  ``attention`` (a resolution, 0: none): a
    self-attention layer (SAGAN) after the block at that resolution.  ``skip``: the output is a sum over
    resolutions (StyleGAN2's "skip" generator, Karras et al. 2020; MSG-GAN): a 1x1 convolution draws RGB
    from the seed and from each block but the last, each sum is upsampled x2 (bilinear) and added to the next
    one's, and the last block's RGB (the upsampling to RGB, or ``out_width``'s convolution) is added at full size
    before the tanh, so coarse shapes reach the image by a short path from the first steps.  ``cbn`` (conditional
    only): every batch norm takes its scale and offset from the hair and eye vectors
    (:class:`~gan_anime.models.layers.ConditionalBatchNorm`), besides their concatenation to the noise.  ``sle``
    (32 px and up): each block from 16 px up has its output scaled channel by channel by gates drawn from the
    features at a quarter of its resolution (FastGAN's skip-layer excitation, Liu et al. 2021,
    :class:`~gan_anime.models.layers.SkipExcitation`): at 64 px, 16 px from the 4 px seed and 32 px from 8 px.
    """

    def __init__(self, image_size: int = 64, noise_dim: int = 100, width: int = 48,
                 num_hair: int = 0, num_eye: int = 0, upsample: str = "transpose", depth: int = 1,
                 out_width: int = 0, residual: bool = False, attention: int = 0, skip: bool = False,
                 cbn: bool = False, sle: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.noise_dim, self.width = image_size, noise_dim, width
        self.num_hair, self.num_eye, self.upsample, self.depth = num_hair, num_eye, upsample, depth
        self.out_width, self.residual, self.attention = out_width, bool(residual), int(attention)
        self.skip, self.cbn, self.sle = bool(skip), bool(cbn), bool(sle)
        if self.cbn and not self.conditional:
            raise ValueError("cbn needs a conditional generator (num_hair and num_eye > 0)")
        n = num_blocks(image_size)
        if self.sle and n < 3:
            raise ValueError(f"sle needs images of 32 px or more (a block at 16 px), got {image_size}")
        seed_ch = width * 2 ** (n - 1)
        self.project = keras.layers.Dense(4 * 4 * seed_ch, use_bias=False,
                                          kernel_initializer=dcgan_init(), name="project")
        self.reshape = keras.layers.Reshape((4, 4, seed_ch))
        self.seed_bn = g_norm(seed_ch, "seed_bn", self.cbn)
        # Sequential, not a plain list: tf.train.Checkpoint only tracks layers held as attributes.  With cbn a
        # LabelledChain instead, which passes the labels on (a Sequential is built on symbolic inputs without them).
        chain = LabelledChain if self.cbn else keras.Sequential
        body, ends = [], []   # ends: where each resolution's layers end in body
        for i in range(n - 1):
            ch = seed_ch // 2 ** (i + 1)
            body += up_block(ch, upsample, f"g{i}") + [g_norm(ch, f"g{i}_bn", self.cbn), keras.layers.ReLU()]
            for j in range(1, depth):   # depth > 1: more 3x3 convolutions at this resolution
                if residual:
                    body.append(ResidualConv(ch, f"g{i}_conv{j}", f"g{i}_bn{j}", self.cbn, name=f"g{i}_res{j}"))
                else:
                    body += [conv3x3(ch, f"g{i}_conv{j}"), g_norm(ch, f"g{i}_bn{j}", self.cbn),
                             keras.layers.ReLU()]
            if attention == 8 * 2 ** i:
                body.append(SelfAttention(ch, name=f"g{i}_attention"))
            ends.append(len(body))
        if self.skip or self.sle:   # a block per resolution (attributes: tracked), with skip 1x1 RGB outputs of
            # the seed (4 px) and of each block but the last, with sle gates on each block from 16 px up
            self.blocks = len(ends)
            for i, (start, end) in enumerate(zip([0] + ends, ends)):
                setattr(self, f"block{i}", chain(body[start:end], name=f"block{i}"))
            widths = [seed_ch] + [seed_ch // 2 ** (i + 1) for i in range(n - 1)]   # the seed's, each block's
            if self.skip:
                for i in range(len(widths)):
                    setattr(self, f"skip_rgb{i}", keras.layers.Conv2D(3, 1, kernel_initializer=dcgan_init(),
                                                                      name=f"skip_rgb{i}"))
            if self.sle:
                for i in range(1, self.blocks):   # block i: 8 * 2**i px, gated from features[i - 1]
                    setattr(self, f"sle{i}", SkipExcitation(widths[i + 1], name=f"sle{i}"))
        else:
            self.body = chain(body, name="body")
        if out_width:   # features at the output resolution, then a 3x3 convolution to RGB
            rgb = up_block(out_width, upsample, "rgb") + [g_norm(out_width, "rgb_bn", self.cbn), keras.layers.ReLU(),
                                                          conv3x3(3, "rgb_conv")]
        else:
            rgb = up_block(3, upsample, "rgb", last=True)
        self.to_rgb = chain(rgb, name="to_rgb")
        self.out_act = keras.layers.Activation("tanh", dtype="float32", name="tanh")

    @property
    def conditional(self) -> bool:
        return self.num_hair > 0 and self.num_eye > 0

    def call(self, z, labels: Labels = None, training: bool = False):
        x, y = z, None
        if self.conditional:
            if labels is None:
                raise ValueError("this generator is conditional: pass labels=(hair, eye)")
            hair, eye = labels
            y = tf.concat([self._one_hot(hair, self.num_hair, "hair"), self._one_hot(eye, self.num_eye, "eye")],
                          axis=-1)
            x = tf.concat([tf.cast(z, self.compute_dtype), y], axis=-1)
        x = self.reshape(self.project(x))
        x = tf.nn.relu(call_with_labels(self.seed_bn, x, y, training))
        if not (self.skip or self.sle):
            return self.out_act(call_with_labels(self.to_rgb, call_with_labels(self.body, x, y, training), y, training))
        features = [x]   # the seed's, then each block's (what sle gates are drawn from)
        rgb = self.skip_rgb0(x) if self.skip else None
        for i in range(self.blocks):
            x = call_with_labels(getattr(self, f"block{i}"), x, y, training)
            if self.sle and i >= 1:
                x = getattr(self, f"sle{i}")(x, features[i - 1])
            features.append(x)
            if self.skip:
                rgb = _up2(rgb) + getattr(self, f"skip_rgb{i + 1}")(x)
        out = call_with_labels(self.to_rgb, x, y, training)
        return self.out_act(out if rgb is None else _up2(rgb) + out)

    def _one_hot(self, labels, depth: int, what: str):
        """int [B] class indices -> one-hot [B, depth]; float [B, depth] (soft) vectors pass as they are.

        The one-hot vector is what the first layer sees either way, so soft labels need no new
        weights and the checkpoint layout is unchanged.
        """
        labels = tf.convert_to_tensor(labels)
        if not labels.dtype.is_floating:
            return tf.one_hot(labels, depth, dtype=self.compute_dtype)
        if labels.shape.rank != 2 or labels.shape[-1] != depth:
            raise ValueError(f"float {what} labels must be vectors [B, {depth}], got shape {labels.shape}")
        return tf.cast(labels, self.compute_dtype)

    def get_config(self):
        return {"image_size": self.image_size, "noise_dim": self.noise_dim, "width": self.width,
                "num_hair": self.num_hair, "num_eye": self.num_eye, "upsample": self.upsample,
                "depth": self.depth, "out_width": self.out_width, "residual": self.residual,
                "attention": self.attention, "skip": self.skip, "cbn": self.cbn, "sle": self.sle}


def _up2(x):
    """x2 bilinear upsampling (half-pixel centres: each new pixel 3/4 of its nearest and 1/4 of the next one's,
    StyleGAN2's [1, 3, 3, 1] filter), in x's dtype."""
    size = 2 * tf.shape(x)[1:3]
    return tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)


class Discriminator(keras.Model):
    """images float32 [B, S, S, 3] in [-1, 1] (+ labels) -> logits float32 [B].

    With ``heads="classifier"`` (and classes): images -> dict(logits float32 [B], hair float32
    [B, num_hair], eye float32 [B, num_eye]) of unnormalised class scores; labels are not used.

    Strided 4x4 convs halve the resolution down to 4x4 (LeakyReLU 0.2; batch norm on
    all but the first, as in DCGAN), a minibatch-stddev feature, a dense feature
    layer, then a linear logit plus the class projections (or the class heads).  ``depth`` > 1 adds
    ``depth - 1`` 3x3 convolutions (LeakyReLU) after each strided conv but the last, as ``Generator``'s.
    ``sn``: every conv and dense layer spectrally normalised (SNGAN).  ``attention`` (a resolution, 0:
    none): a self-attention layer (SAGAN) after the block whose output has that resolution.  ``residual``:
    each block's output is ``(block(x) + conv1x1(avgpool2(x))) / sqrt(2)``, a linear shortcut around it
    (StyleGAN2's residual discriminator, Karras et al. 2020).
    """

    def __init__(self, image_size: int = 64, width: int = 48, num_hair: int = 0, num_eye: int = 0,
                 norm: str = "batch", mbstd_group: int = 4, heads: str = "projection", sn: bool = False,
                 depth: int = 1, attention: int = 0, residual: bool = False, **kwargs):
        super().__init__(**kwargs)
        if heads not in ("projection", "classifier"):
            raise ValueError(f"heads must be 'projection' or 'classifier', got {heads!r}")
        self.image_size, self.width, self.norm, self.mbstd_group = image_size, width, norm, mbstd_group
        self.num_hair, self.num_eye, self.heads, self.sn, self.depth = num_hair, num_eye, heads, sn, depth
        self.attention, self.residual = int(attention), bool(residual)
        wrap = spectral_norm if sn else (lambda layer: layer)
        n = num_blocks(image_size)
        body, ends = [], []   # ends: where each block's layers end in body
        for i in range(n):
            body.append(wrap(keras.layers.Conv2D(width * 2 ** i, 4, strides=2, padding="same",
                                                 use_bias=(i == 0 or norm != "batch"),
                                                 kernel_initializer=dcgan_init(), name=f"d{i}_conv")))
            if i > 0 and norm == "batch":
                body.append(batch_norm(f"d{i}_bn"))
            body.append(keras.layers.LeakyReLU(0.2))
            for j in range(1, depth if i < n - 1 else 1):   # depth > 1: more 3x3 convolutions at this resolution
                body.append(wrap(conv3x3(width * 2 ** i, f"d{i}_conv{j}", use_bias=norm != "batch")))
                if norm == "batch":
                    body.append(batch_norm(f"d{i}_bn{j}"))
                body.append(keras.layers.LeakyReLU(0.2))
            if i < n - 1 and attention == image_size // 2 ** (i + 1):
                body.append(SelfAttention(width * 2 ** i, sn=sn, name=f"d{i}_attention"))
            ends.append(len(body))
        if self.residual:   # a block and a shortcut per resolution (attributes: tracked)
            self.blocks = n
            for i, (start, end) in enumerate(zip([0] + ends, ends)):
                setattr(self, f"block{i}", keras.Sequential(body[start:end], name=f"block{i}"))
                setattr(self, f"shortcut{i}", keras.Sequential([
                    keras.layers.AveragePooling2D(2, name=f"d{i}_pool"),
                    wrap(keras.layers.Conv2D(width * 2 ** i, 1, use_bias=False, kernel_initializer=dcgan_init(),
                                             name=f"d{i}_shortcut"))], name=f"shortcut{i}"))
        else:
            self.body = keras.Sequential(body, name="body")
        self.mbstd = MinibatchStddev(mbstd_group) if mbstd_group > 0 else None
        feat = width * 2 ** (n - 1)
        self.flatten = keras.layers.Flatten()
        self.features = wrap(keras.layers.Dense(feat, kernel_initializer=dcgan_init(), name="features"))
        self.logit = wrap(keras.layers.Dense(1, kernel_initializer=dcgan_init(), dtype="float32", name="logit"))
        if self.conditional and heads == "classifier":
            self.hair_head = wrap(keras.layers.Dense(num_hair, kernel_initializer=dcgan_init(), dtype="float32",
                                                     name="hair_head"))
            self.eye_head = wrap(keras.layers.Dense(num_eye, kernel_initializer=dcgan_init(), dtype="float32",
                                                    name="eye_head"))
        elif self.conditional:
            self.hair_embed = keras.layers.Embedding(num_hair, feat, embeddings_initializer=dcgan_init(),
                                                     name="hair_embed")
            self.eye_embed = keras.layers.Embedding(num_eye, feat, embeddings_initializer=dcgan_init(),
                                                    name="eye_embed")

    @property
    def conditional(self) -> bool:
        return self.num_hair > 0 and self.num_eye > 0

    def call(self, images, labels: Labels = None, training: bool = False):
        if self.residual:
            x = images
            for i in range(self.blocks):
                x = (getattr(self, f"block{i}")(x, training=training)
                     + getattr(self, f"shortcut{i}")(x, training=training)) * (2 ** -0.5)
        else:
            x = self.body(images, training=training)
        if self.mbstd is not None:
            x = self.mbstd(x)
        h = tf.nn.leaky_relu(self.features(self.flatten(x), training=training), 0.2)
        out = tf.squeeze(self.logit(h, training=training), -1)
        if self.conditional and self.heads == "classifier":
            return {"logits": out, "hair": self.hair_head(h, training=training),
                    "eye": self.eye_head(h, training=training)}
        if self.conditional:
            if labels is None:
                raise ValueError("this discriminator is conditional: pass labels=(hair, eye)")
            hair, eye = labels
            h32 = tf.cast(h, tf.float32)
            proj = self.hair_embed(hair) + self.eye_embed(eye)
            out = out + tf.reduce_sum(tf.cast(proj, tf.float32) * h32, axis=-1)
        return out

    def get_config(self):
        return {"image_size": self.image_size, "width": self.width, "num_hair": self.num_hair,
                "num_eye": self.num_eye, "norm": self.norm, "mbstd_group": self.mbstd_group, "heads": self.heads,
                "sn": self.sn, "depth": self.depth, "attention": self.attention, "residual": self.residual}
