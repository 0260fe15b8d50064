"""Building blocks shared by the generator and the discriminator."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

# DCGAN paper: weights from N(0, 0.02).
def dcgan_init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def batch_norm(name=None, affine: bool = True):
    """Batch norm whose statistics span the *global* batch under ``tf.distribute``.

    Plain ``BatchNormalization`` normalises each replica's slice on its own, so two
    GPUs would train a different model than one; ``synchronized=True`` all-reduces
    the moments and matches a single device.  Momentum 0.9 lets the moving
    statistics (used by ``generate``) keep up with a fast-changing generator.
    """
    return keras.layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5, center=affine,
                                           scale=affine, name=name)


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


class Blur(keras.layers.Layer):
    """A fixed [1, 2, 1] x [1, 2, 1] / 16 binomial low-pass filter, per channel, "same" size.

    After a stride-2 transposed convolution it spreads each output pixel's taps over its
    neighbours, so the period-2 pattern that convolution tends to print (checkerboard artifacts,
    Odena et al. 2016) is damped; StyleGAN2 filters its upsampling the same way (Karras et al. 2020).
    It has no weights and costs 9 multiply-adds per value.  x: [B, H, W, C] -> [B, H, W, C].
    """

    def call(self, x):
        taps = tf.constant([1.0, 2.0, 1.0]) / 4.0
        kernel = tf.tile(tf.reshape(taps[:, None] * taps[None, :], [3, 3, 1, 1]), [1, 1, x.shape[-1], 1])
        return tf.nn.depthwise_conv2d(x, tf.cast(kernel, x.dtype), [1, 1, 1, 1], "SAME")

    def compute_output_shape(self, input_shape):
        return input_shape


def up_block(filters: int, upsample: str, name: str, last: bool = False):
    """Doubles the resolution: a 4x4 stride-2 transposed conv (DCGAN); the same followed by a binomial
    blur (``blur``; not on the ``last`` block, the one to RGB, whose blur would soften the images' own
    1-pixel outlines); or nearest upsample + 3x3 conv (``nearest``)."""
    if upsample in ("transpose", "blur"):
        deconv = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                                              kernel_initializer=dcgan_init(), name=f"{name}_deconv")
        return [deconv] if upsample == "transpose" or last else [deconv, Blur(name=f"{name}_blur")]
    return [keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up"), conv3x3(filters, f"{name}_conv")]


def conv3x3(filters: int, name: str, use_bias: bool = False):
    """A 3x3 same-padding convolution with DCGAN's initialiser (no bias: a batch norm follows)."""
    return keras.layers.Conv2D(filters, 3, padding="same", use_bias=use_bias, kernel_initializer=dcgan_init(),
                               name=name)


class ConditionalBatchNorm(keras.layers.Layer):
    """Batch norm whose scale and offset are functions of the labels (conditional batch norm: de Vries et al.
    2017; the generator of Miyato & Koyama 2018's projection GAN, and BigGAN's).

    ``x`` [B, H, W, C] (or [B, C]) is normalised by a batch norm without its own scale and offset, then
    ``x̂ * (1 + gamma(y)) + beta(y)``, where ``y`` [B, L] is the concatenated one-hot (or soft) hair and eye
    vectors and gamma, beta are dense layers L -> C.  Both start at zero, so a new layer is a plain batch norm
    and each class learns how to move its own channels.  The statistics span the global batch (``batch_norm``).
    """

    takes_labels = True     # Generator passes the label vectors to layers that say so

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.bn = batch_norm("bn", affine=False)
        self.gamma = keras.layers.Dense(self.channels, kernel_initializer="zeros", name="gamma")
        self.beta = keras.layers.Dense(self.channels, kernel_initializer="zeros", name="beta")

    def build(self, x_shape, labels_shape):
        self.bn.build(x_shape)
        self.gamma.build(labels_shape)
        self.beta.build(labels_shape)
        self.built = True

    def call(self, x, labels, training=False):
        labels = tf.cast(labels, self.compute_dtype)
        shape = [-1] + [1] * (len(x.shape) - 2) + [self.channels]   # [B, 1, 1, C] for feature maps
        gamma = tf.reshape(self.gamma(labels), shape)
        beta = tf.reshape(self.beta(labels), shape)
        return self.bn(x, training=training) * (1.0 + gamma) + beta

    def compute_output_shape(self, x_shape, labels_shape=None):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def call_with_labels(layer, x, labels, training):
    """``layer`` on ``x``, and on the label vectors ``labels`` [B, L] too when it says it takes them
    (``takes_labels``)."""
    if getattr(layer, "takes_labels", False):
        return layer(x, labels, training=training)
    return layer(x, training=training)


class LabelledChain(keras.layers.Layer):
    """Layers applied in turn, like ``keras.Sequential``, passing the label vectors to those that take them
    (``takes_labels``: a :class:`ConditionalBatchNorm`, a conditional :class:`ResidualConv`).
    x: [B, ...], labels: [B, L] -> the last layer's output."""

    takes_labels = True

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self.length = len(layers)
        for k, layer in enumerate(layers):   # attributes, not a list: tf.train.Checkpoint tracks these
            setattr(self, f"layer{k}", layer)

    @property
    def chain(self):
        return [getattr(self, f"layer{k}") for k in range(self.length)]

    def build(self, x_shape, labels_shape=None):   # each layer builds on its first call, with its input's shape
        self.built = True

    def call(self, x, labels=None, training=False):
        for layer in self.chain:
            x = call_with_labels(layer, x, labels, training)
        return x


def g_norm(channels: int, name: str, conditional: bool):
    """The generator's batch norm: :func:`batch_norm`, or a :class:`ConditionalBatchNorm` of ``channels``."""
    return ConditionalBatchNorm(channels, name=name) if conditional else batch_norm(name)


class ResidualConv(keras.layers.Layer):
    """``relu(x + bn(conv3x3(x)))``: a 3x3 convolution (no bias) and batch norm with an identity shortcut
    (He et al. 2016), the same arithmetic as the plain conv + batch norm + ReLU it replaces.
    x: [B, H, W, filters] -> the same shape."""

    def __init__(self, filters: int, conv_name: str, bn_name: str, conditional: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.conv = conv3x3(filters, conv_name)
        self.bn = g_norm(filters, bn_name, conditional)
        self.takes_labels = bool(conditional)    # a conditional batch norm: Generator passes the labels

    def build(self, x_shape, labels_shape=None):   # named after call's arguments, as Keras matches them
        self.conv.build(x_shape)
        if self.takes_labels:
            self.bn.build((*x_shape[:-1], self.filters), labels_shape)
        else:
            self.bn.build((*x_shape[:-1], self.filters))
        self.built = True

    def call(self, x, labels=None, training=False):
        return tf.nn.relu(x + call_with_labels(self.bn, self.conv(x), labels, training))

    def compute_output_shape(self, x_shape, labels_shape=None):
        return x_shape


class SkipExcitation(keras.layers.Layer):
    """FastGAN's skip-layer excitation (Liu et al. 2021): channel gates for a high-resolution feature map, drawn
    from a low-resolution one.  ``low`` [B, h, w, C_low] is average-pooled to 4x4, a 4x4 convolution (no padding)
    makes ``channels`` numbers of it, then Swish, a 1x1 convolution and a sigmoid: gates in (0, 1) that scale
    ``high`` [B, H, W, channels] channel by channel.  The coarse layout (where the face is, its pose) reaches the
    fine features by a short path, and gradients reach the coarse layers by it."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.squeeze = keras.layers.Conv2D(channels, 4, padding="valid", use_bias=False,
                                           kernel_initializer=dcgan_init(), name="squeeze")
        self.excite = keras.layers.Conv2D(channels, 1, use_bias=False, kernel_initializer=dcgan_init(),
                                          name="excite")

    def build(self, high_shape, low_shape):   # named after call's arguments, as Keras matches them
        self.squeeze.build((low_shape[0], 4, 4, low_shape[-1]))
        self.excite.build((low_shape[0], 1, 1, self.channels))
        self.built = True

    def call(self, high, low):
        if low.shape[1] != 4:   # the pooling FastGAN does with AdaptiveAvgPool2d(4); sizes are powers of two here
            k = low.shape[1] // 4
            low = tf.nn.avg_pool2d(low, k, k, "VALID")
        gates = tf.sigmoid(self.excite(tf.nn.silu(self.squeeze(low))))
        return high * gates

    def compute_output_shape(self, high_shape, low_shape=None):
        return high_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def attention_widths(channels: int):
    """(query/key channels, value channels) of a :class:`SelfAttention` on ``channels``: C/8 and C/2, at least 1."""
    return max(1, channels // 8), max(1, channels // 2)


class SelfAttention(keras.layers.Layer):
    """Self-attention over the pixels of a feature map (SAGAN, Zhang et al. 2019).

    x: [B, H, W, C] -> x + gamma * o(softmax(q k^T) v), the same shape: 1x1 convolutions make queries and
    keys of C/8 channels and values of C/2, every pixel attends to every pixel (H*W x H*W weights, softmax
    in float32), and a 1x1 convolution maps the result back to C channels.  gamma is a learned scalar that
    starts at 0, so the layer starts as the identity and the network learns how much to use it.  ``sn``:
    the four convolutions spectrally normalised (for a discriminator with spectral norm).
    """

    def __init__(self, channels: int, sn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.sn = int(channels), bool(sn)
        wrap = spectral_norm if sn else (lambda layer: layer)
        inner, half = attention_widths(channels)

        def conv(filters, name):
            return wrap(keras.layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=dcgan_init(),
                                            name=f"{self.name}_{name}"))
        self.query, self.key, self.value = conv(inner, "query"), conv(inner, "key"), conv(half, "value")
        self.out = conv(channels, "out")

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value):
            layer.build(input_shape)
        self.out.build((*input_shape[:-1], attention_widths(self.channels)[1]))
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")
        self.built = True

    def call(self, x, training=False):
        shape = tf.shape(x)
        pixels = shape[1] * shape[2]

        def flat(layer):
            y = layer(x, training=training)
            return tf.reshape(y, [shape[0], pixels, y.shape[-1]])
        q, k, v = flat(self.query), flat(self.key), flat(self.value)
        weights = tf.nn.softmax(tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32), axis=-1)   # [B, HW, HW]
        o = tf.reshape(tf.matmul(tf.cast(weights, v.dtype), v), [shape[0], shape[1], shape[2], v.shape[-1]])
        return x + tf.cast(self.gamma, x.dtype) * self.out(o, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape


def attention_flops(resolution: int, channels: int, products_only: bool = False) -> float:
    """Forward FLOPs of one :class:`SelfAttention` on a [resolution, resolution, channels] map (multiply-adds
    counted as 2): the four 1x1 convolutions and the two [HW x HW] products (``products_only``: those alone)."""
    hw, (inner, half) = resolution * resolution, attention_widths(channels)
    products = 2.0 * hw * hw * (inner + half)
    if products_only:
        return products
    return 2.0 * hw * channels * (2 * inner + half) + 2.0 * hw * half * channels + products


def num_blocks(image_size: int) -> int:
    """Resolution-doubling blocks between the 4x4 seed and ``image_size``."""
    n = int(round(math.log2(image_size))) - 2
    if n < 2 or 4 * 2 ** n != image_size:
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    return n


class SpectralNorm(keras.layers.Wrapper):
    """Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for GANs") of a Conv2D or Dense.

    The wrapped layer computes with ``W / sigma(W)`` instead of its kernel W, sigma the largest
    singular value of W reshaped to [kh*kw*cin, cout] (a Dense kernel [in, out] as it is), so the
    layer is 1-Lipschitz (for a convolution approximately, as in the paper).  sigma comes from
    ``power_iterations`` steps of power iteration from a stored non-trainable vector u [cout]; as
    in the paper (and ``torch.nn.utils.spectral_norm``) the gradient flows through sigma with u
    and v held constant.  ``training=True`` stores the new u, so one step per call converges over
    training; ``training=False`` runs the same steps without storing, so inference changes no
    state.  The kernel variable keeps its unnormalised values.

    Why not ``keras.layers.SpectralNormalization`` (Keras 3.15): it runs (tf.function, XLA,
    MirroredStrategy), but it is a different method: each training call *assigns* W / sigma to the
    kernel variable, so the gradient is taken as if the kernel were a plain weight and never flows
    through sigma (the concern raised on its predecessor, tensorflow/addons PR 1244), the optimizer
    then moves the kernel off the normalised value, and inference uses whatever the last training
    call left there.

    Under tf.distribute, u is a mirrored variable that each replica updates locally (aggregation
    "none"): every replica computes the same u from the same W and u, so no cross-replica call
    (merge_call) is needed in the replica step, compiled with XLA or not.
    """

    def __init__(self, layer, power_iterations: int = 1, epsilon: float = 1e-12, **kwargs):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            raise TypeError(f"spectral normalisation wraps a Conv2D or Dense layer, got {type(layer).__name__}")
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {power_iterations}")
        kwargs.setdefault("name", f"{layer.name}_sn")
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(layer, **kwargs)
        self.power_iterations, self.epsilon = int(power_iterations), float(epsilon)

    def build(self, input_shape):
        super().build(input_shape)
        self.u = self.add_weight(shape=(self.layer.kernel.shape[-1],), initializer=keras.initializers.RandomNormal(),
                                 trainable=False, autocast=False, aggregation="none", name="u")

    def normalized_kernel(self, training: bool = False):
        """The kernel divided by its estimated spectral norm (float32, the kernel's shape)."""
        kernel = tf.cast(self.layer.kernel.value, tf.float32)
        w = tf.reshape(kernel, [-1, kernel.shape[-1]])                  # [kh*kw*cin, cout]
        u = tf.cast(self.u.value, tf.float32)
        for _ in range(self.power_iterations):
            v = tf.math.l2_normalize(tf.linalg.matvec(w, u), epsilon=self.epsilon)                  # [kh*kw*cin]
            u = tf.math.l2_normalize(tf.linalg.matvec(w, v, transpose_a=True), epsilon=self.epsilon)  # [cout]
        u, v = tf.stop_gradient(u), tf.stop_gradient(v)
        if training:
            self.u.assign(u)
        sigma = tf.tensordot(v, tf.linalg.matvec(w, u), 1)
        return kernel / sigma

    def call(self, inputs, training=False):
        layer = self.layer
        kernel = tf.cast(self.normalized_kernel(bool(training)), inputs.dtype)
        if isinstance(layer, keras.layers.Dense):
            out = tf.matmul(inputs, kernel) if len(inputs.shape) == 2 else tf.tensordot(inputs, kernel, 1)
        else:
            out = layer.convolution_op(inputs, kernel)
        if layer.use_bias:
            bias = tf.cast(layer.bias, out.dtype)
            if isinstance(layer, keras.layers.Conv2D) and layer.data_format == "channels_first":
                bias = tf.reshape(bias, [1, -1, 1, 1])
            out = out + bias
        return layer.activation(out) if layer.activation is not None else out

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations, "epsilon": self.epsilon}


def spectral_norm(layer, power_iterations: int = 1) -> SpectralNorm:
    """``layer`` (a Conv2D or Dense) with a spectrally normalised kernel (Miyato et al. 2018); see SpectralNorm."""
    return SpectralNorm(layer, power_iterations=power_iterations)
