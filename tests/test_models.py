"""Shapes and ranges of every model and layer."""

import numpy as np
import pytest
import tensorflow as tf

from gan_anime.config import UPSAMPLES, Config
from gan_anime.models import build_models
from gan_anime.models.dcgan import Discriminator, Generator
from gan_anime.models.layers import Blur, MinibatchStddev, num_blocks, up_block


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("conditional", [False, True])
def test_generator_and_discriminator_shapes(size, conditional):
    hair, eye = (5, 4) if conditional else (0, 0)
    g = Generator(size, noise_dim=12, width=4, num_hair=hair, num_eye=eye)
    d = Discriminator(size, width=4, num_hair=hair, num_eye=eye)
    z = tf.random.normal([6, 12])
    labels = (tf.constant([0, 1, 2, 3, 4, 0]), tf.constant([3, 2, 1, 0, 0, 1])) if conditional else None
    x = g(z, labels, training=True)
    assert x.shape == (6, size, size, 3) and x.dtype == tf.float32
    assert float(tf.reduce_min(x)) >= -1.0 and float(tf.reduce_max(x)) <= 1.0
    y = d(x, labels, training=True)
    assert y.shape == (6,) and bool(tf.reduce_all(tf.math.is_finite(y)))


def test_128px_generator_shape():
    g = Generator(128, noise_dim=4, width=2)
    assert g(tf.zeros([2, 4])).shape == (2, 128, 128, 3)


def test_labels_change_conditional_output():
    g = Generator(16, noise_dim=8, width=4, num_hair=3, num_eye=2)
    z = tf.random.normal([2, 8])
    a = g(z, (tf.constant([0, 0]), tf.constant([0, 0])))
    b = g(z, (tf.constant([2, 2]), tf.constant([1, 1])))
    assert float(tf.reduce_max(tf.abs(a - b))) > 0


def test_conditional_models_require_labels():
    g = Generator(16, noise_dim=8, width=4, num_hair=3, num_eye=2)
    with pytest.raises(ValueError, match="labels"):
        g(tf.zeros([1, 8]))


def test_nearest_upsample_generator():
    g = Generator(32, noise_dim=8, width=4, upsample="nearest")
    assert g(tf.zeros([3, 8])).shape == (3, 32, 32, 3)


def test_blur_is_a_normalised_binomial_filter():
    x = np.zeros((1, 5, 5, 2), np.float32)
    x[0, 2, 2, 0] = 16.0
    x[..., 1] = 3.0
    y = Blur()(tf.constant(x)).numpy()
    np.testing.assert_allclose(y[0, 1:4, 1:4, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert y[..., 0].sum() == pytest.approx(16.0)        # an inner impulse keeps its mass
    np.testing.assert_allclose(y[0, 1:4, 1:4, 1], 3.0)    # a flat area stays flat (channels apart)
    assert not Blur().trainable_weights


def test_blur_upsampling_filters_every_block_but_the_one_to_rgb():
    g = Generator(32, noise_dim=8, width=4, upsample="blur")
    assert g(tf.zeros([2, 8])).shape == (2, 32, 32, 3)
    assert [type(l).__name__ for l in g.body.layers].count("Blur") == 2
    assert [type(l).__name__ for l in g.to_rgb.layers] == ["Conv2DTranspose"]
    with pytest.raises(ValueError, match="upsample must be one of transpose, blur, nearest, got 'bilinear'"):
        from gan_anime.config import validate
        validate(Config(upsample="bilinear"))


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_generator_depth_adds_3x3_convolutions_per_resolution(depth):
    g = Generator(32, noise_dim=8, width=4, depth=depth)
    assert g(tf.zeros([2, 8]), training=True).shape == (2, 32, 32, 3)
    extra = [tuple(w.shape) for w in g.trainable_weights if "_conv" in w.path and "kernel" in w.path]
    # 32 px, width 4: a 16-channel seed, then body blocks of 8 and 4 channels at 8 and 16 px, each with
    # depth - 1 more 3x3 convolutions; the last block (to RGB, at 32 px) has none
    assert sorted(extra) == sorted([(3, 3, 8, 8)] * (depth - 1) + [(3, 3, 4, 4)] * (depth - 1))


def test_residual_generator_adds_its_input_to_each_3x3_convolution():
    """g_residual: the same 3x3 convolutions and batch norms as g_depth 2 (so the same weights), each block
    relu(x + bn(conv(x))); with the convolution's kernel zeroed the block passes relu(x + beta) on."""
    from gan_anime.models.layers import ResidualConv
    plain, res = (Generator(32, noise_dim=8, width=4, depth=2, residual=r) for r in (False, True))
    z = tf.random.stateless_normal([4, 8], seed=[1, 2])
    plain(z), res(z)
    assert [tuple(w.shape) for w in res.weights] == [tuple(w.shape) for w in plain.weights]
    blocks = [l for l in res.body.layers if isinstance(l, ResidualConv)]
    assert len(blocks) == 2 and res.get_config()["residual"] is True
    x = tf.random.stateless_normal([2, 8, 8, 8], seed=[3, 4])
    block = blocks[0]
    block.conv.kernel.assign(tf.zeros_like(block.conv.kernel))
    block.bn.beta.assign(tf.fill(block.bn.beta.shape, 0.5))
    # zero convolution: batch norm (inference) maps 0 to beta, so the block is relu(x + 0.5)
    assert np.allclose(block(x, training=False), tf.nn.relu(x + 0.5), atol=1e-5)
    for p, r in zip(plain.weights, res.weights):   # the same weights give other images: the shortcut is there
        p.assign(r)
    assert not np.allclose(res(z), plain(z), atol=1e-3)


def test_residual_generator_needs_depth():
    from gan_anime.config import validate
    with pytest.raises(ValueError, match="g_residual needs g_depth >= 2"):
        validate(Config(g_depth=1, g_residual=True))
    a = Config()
    assert set(a.architecture_diff(a.replace(g_residual=True))) == {"g_residual"}


def _layer_path(w):
    """A variable's (layer, name) below the model's own auto-numbered name and its block: what two generators
    built with and without an option share."""
    return tuple(w.path.split("/")[-2:])


def test_skip_generator_sums_rgb_from_every_resolution():
    """g_skip: the plain generator's weights plus a 1x1 convolution to RGB at 4, 8 and 16 px (for 32 px images);
    with those zeroed the images are the plain generator's, and the 4 px one alone reaches the output as its
    bilinear x8 upsampling (the chain of x2 ones) under the tanh."""
    from gan_anime.benchmark import HEAVY_OPS, forward_flops, graph_flops
    plain, skip = (Generator(32, noise_dim=8, width=4, depth=2, skip=s) for s in (False, True))
    z = tf.random.stateless_normal([4, 8], seed=[1, 2])
    plain(z), skip(z)
    rgb = [skip.skip_rgb0, skip.skip_rgb1, skip.skip_rgb2]
    assert [tuple(l.kernel.shape) for l in rgb] == [(1, 1, 16, 3), (1, 1, 8, 3), (1, 1, 4, 3)]
    assert not hasattr(skip, "skip_rgb3") and skip.get_config()["skip"] is True
    extra = {_layer_path(w) for w in skip.weights} - {_layer_path(w) for w in plain.weights}
    assert len(extra) == 6 and all("skip_rgb" in p[0] for p in extra)   # 3 kernels, 3 biases
    by_path = {_layer_path(w): w for w in skip.weights}
    for w in plain.weights:
        w.assign(by_path[_layer_path(w)])
    for layer in rgb:
        layer.kernel.assign(tf.zeros_like(layer.kernel))
    assert np.allclose(skip(z), plain(z), atol=1e-6)
    rgb[0].bias.assign([0.3, -0.2, 0.1])   # a constant 4 px image: upsampled, still the same constant everywhere
    assert np.allclose(skip(z), tf.tanh(tf.atanh(tf.clip_by_value(plain(z), -0.999999, 0.999999))
                                        + [0.3, -0.2, 0.1]), atol=1e-4)
    rgb[0].bias.assign([0.0, 0.0, 0.0])
    rgb[1].kernel.assign(tf.random.stateless_normal(rgb[1].kernel.shape, seed=[5, 6]))
    assert not np.allclose(skip(z), plain(z), atol=1e-3)
    # the hand count adds exactly the three 1x1 convolutions' multiply-adds
    traced = [graph_flops(tf.function(lambda x, g=g: g(x)).get_concrete_function(tf.TensorSpec([1, 8])), HEAVY_OPS)
              for g in (plain, skip)]
    cfg = Config(image_size=32, noise_dim=8, g_width=4, g_depth=2)
    hand = forward_flops(cfg.replace(g_skip=True))["G"] - forward_flops(cfg)["G"]
    assert traced[1] - traced[0] == hand == 2 * 3 * (16 * 16 + 64 * 8 + 256 * 4)


def test_skip_generator_is_an_architecture_field():
    from gan_anime.config import validate
    a = Config()
    assert set(a.architecture_diff(a.replace(g_skip=True))) == {"g_skip"}
    with pytest.raises(ValueError, match="g_skip must be true or false"):
        validate(Config(g_skip=1))
    g, _ = build_models(Config(image_size=16, g_width=4, d_width=4, g_skip=True))
    assert g.skip and g(tf.zeros([2, 100])).shape == (2, 16, 16, 3)


def test_residual_discriminator_adds_a_pooled_1x1_shortcut_to_each_block():
    """d_residual: the plain discriminator's weights plus a 1x1 kernel per block; each block's output is
    (block(x) + conv1x1(avgpool2(x))) / sqrt(2), and the hand count adds exactly those 1x1 convolutions."""
    from gan_anime.benchmark import HEAVY_OPS, forward_flops, graph_flops
    plain, res = (Discriminator(32, width=4, residual=r) for r in (False, True))
    x = tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2], minval=-1, maxval=1)
    plain(x), res(x)
    assert res.get_config()["residual"] is True and not plain.get_config()["residual"]
    shortcuts = [getattr(res, f"shortcut{i}").layers[1] for i in range(3)]
    assert [tuple(l.kernel.shape) for l in shortcuts] == [(1, 1, 3, 4), (1, 1, 4, 8), (1, 1, 8, 16)]
    assert len(res.weights) == len(plain.weights) + 3
    kernel = tf.random.stateless_normal([1, 1, 3, 4], seed=[3, 4])
    shortcuts[0].kernel.assign(kernel)
    pooled = tf.nn.avg_pool2d(x, 2, 2, "VALID")
    expected = (res.block0(x) + tf.einsum("bhwc,cd->bhwd", pooled, kernel[0, 0])) / np.sqrt(2.0)
    first = (res.block0(x) + res.shortcut0(x)) * (2 ** -0.5)
    assert np.allclose(first, expected, atol=1e-5)
    before = res(x)
    for layer in shortcuts:   # the shortcuts reach the logits
        layer.kernel.assign(tf.random.stateless_normal(layer.kernel.shape, seed=[5, 6]))
    assert not np.allclose(before, res(x))
    traced = [graph_flops(tf.function(lambda im, d=d: d(im)).get_concrete_function(tf.TensorSpec([1, 32, 32, 3])),
                          HEAVY_OPS) for d in (plain, res)]
    cfg = Config(image_size=32, d_width=4)
    hand = forward_flops(cfg.replace(d_residual=True))["D"] - forward_flops(cfg)["D"]
    assert traced[1] - traced[0] == hand == 2 * (16 * 16 * 3 * 4 + 64 * 4 * 8 + 16 * 8 * 16)
    from gan_anime.config import validate
    a = Config()
    assert set(a.architecture_diff(a.replace(d_residual=True))) == {"d_residual"}
    with pytest.raises(ValueError, match="d_residual must be true or false"):
        validate(Config(d_residual="yes"))


def test_self_attention_starts_as_identity_and_mixes_pixels_once_gamma_moves():
    from gan_anime.models.layers import SelfAttention
    layer = SelfAttention(16, name="att")
    x = tf.random.stateless_normal([2, 8, 8, 16], seed=[5, 6])
    assert np.allclose(layer(x), x)                        # gamma starts at 0
    kernels = {w.path.split("/")[-2]: tuple(w.shape) for w in layer.weights if "kernel" in w.path}
    assert kernels == {"att_query": (1, 1, 16, 2), "att_key": (1, 1, 16, 2), "att_value": (1, 1, 16, 8),
                       "att_out": (1, 1, 8, 16)}
    layer.gamma.assign(1.0)
    y = layer(x)
    assert y.shape == x.shape and not np.allclose(y, x)
    # every output pixel depends on every input pixel: change one corner pixel, the opposite one moves
    x2 = tf.tensor_scatter_nd_update(x, [[0, 0, 0]], [tf.ones([16])])
    assert not np.allclose(layer(x2)[0, 7, 7], y[0, 7, 7])
    assert np.allclose(layer(x2)[1], y[1])                 # and nothing crosses between images


@pytest.mark.parametrize("resolution", [8, 16])
def test_attention_sits_at_its_resolution_in_both_networks(resolution):
    from gan_anime.models.layers import SelfAttention
    g = Generator(32, noise_dim=8, width=4, attention=resolution)
    d = Discriminator(32, width=4, norm="none", attention=resolution)
    seen = {}

    def spy(layer):
        call = layer.call

        def wrapped(x, training=False):
            seen[layer.name] = tuple(x.shape[1:])
            return call(x, training=training)
        layer.call = wrapped
    for net in (g, d):
        for layer in net.body.layers:
            if isinstance(layer, SelfAttention):
                spy(layer)
    assert g(tf.zeros([2, 8]), training=True).shape == (2, 32, 32, 3)
    assert d(tf.zeros([2, 32, 32, 3]), training=True).shape == (2,)
    # G: 16 channels at 4 px, 8 at 8 px, 4 at 16 px; D: 4 channels at 16 px, 8 at 8 px
    g_ch, d_ch = {8: 8, 16: 4}[resolution], {8: 8, 16: 4}[resolution]
    assert sorted(seen.values()) == sorted([(resolution, resolution, g_ch), (resolution, resolution, d_ch)])
    assert g.get_config()["attention"] == d.get_config()["attention"] == resolution


def test_attention_resolution_is_checked():
    from gan_anime.config import validate
    for bad in (4, 12, 64):
        with pytest.raises(ValueError, match="attention must be 0 .off. or a feature resolution of the 64 px "
                                             "networks, one of 8, 16, 32; got"):
            validate(Config(attention=bad))
    validate(Config(attention=32))
    a = Config()
    assert set(a.architecture_diff(a.replace(attention=16))) == {"attention"}


def test_generator_out_width_draws_rgb_from_features_at_full_resolution():
    g = Generator(32, noise_dim=8, width=4, out_width=6)
    assert g(tf.zeros([2, 8]), training=True).shape == (2, 32, 32, 3)
    kernels = {w.path.split("/")[-2]: tuple(w.shape) for w in g.to_rgb.trainable_weights if "kernel" in w.path}
    # the last transposed conv: 4 channels at 16 px -> 6 at 32 px, then 3x3 from 6 channels to RGB
    assert kernels == {"rgb_deconv": (4, 4, 6, 4), "rgb_conv": (3, 3, 6, 3)}
    assert Generator(32, noise_dim=8, width=4).get_config()["out_width"] == 0


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_discriminator_depth_adds_3x3_convolutions_per_resolution(depth):
    d = Discriminator(32, width=4, norm="none", depth=depth)
    assert d(tf.zeros([4, 32, 32, 3]), training=True).shape == (4,)
    extra = [tuple(w.shape) for w in d.trainable_weights if "_conv" in w.path and "kernel" in w.path
             and tuple(w.shape)[0] == 3]
    # 32 px, width 4: strided convs to 4, 8, 16 channels at 16, 8 px and 4 px; depth - 1 more 3x3
    # convolutions after each but the last
    assert sorted(extra) == sorted([(3, 3, 4, 4)] * (depth - 1) + [(3, 3, 8, 8)] * (depth - 1))


def test_architecture_fields_guard_depth_and_upsampling():
    a = Config()
    assert set(a.architecture_diff(a.replace(g_depth=a.g_depth + 1, upsample="blur"))) == {"g_depth", "upsample"}
    assert set(a.architecture_diff(a.replace(d_depth=2, g_out_width=16))) == {"d_depth", "g_out_width"}
    from gan_anime.config import validate
    with pytest.raises(ValueError, match="g_depth"):
        validate(Config(g_depth=0))
    with pytest.raises(ValueError, match="d_depth"):
        validate(Config(d_depth=0))
    with pytest.raises(ValueError, match="g_out_width"):
        validate(Config(g_out_width=-1))


def test_channel_progression():
    g = Generator(64, noise_dim=8, width=4)
    g(tf.zeros([1, 8]))
    kernels = [w.shape for w in g.trainable_weights if "deconv" in w.path]
    # seed 4*8=32 channels, then 16, 8, 4, then RGB
    assert [k[2] for k in kernels] == [16, 8, 4, 3]


def test_minibatch_stddev_values():
    x = np.zeros((4, 2, 2, 1), np.float32)
    x[:2] = 1.0  # group {0,1}: no spread; group {2,3}: values 0 and 2 -> std 1
    x[3] = 2.0
    y = MinibatchStddev(2)(tf.constant(x)).numpy()
    assert y.shape == (4, 2, 2, 2)
    np.testing.assert_allclose(y[..., 0], x[..., 0])
    np.testing.assert_allclose(y[:2, ..., 1], 1e-4, atol=1e-3)   # sqrt(1e-8)
    np.testing.assert_allclose(y[2:, ..., 1], 1.0, rtol=1e-5)


def test_minibatch_stddev_odd_batch_uses_divisor():
    y = MinibatchStddev(4)(tf.random.normal([6, 3, 3, 2]))  # gcd(4, 6) = 2
    assert y.shape == (6, 3, 3, 3)


def test_up_block_doubles_resolution():
    for kind in UPSAMPLES:
        x = tf.zeros([1, 4, 4, 2])
        for layer in up_block(5, kind, f"t_{kind}"):
            x = layer(x)
        assert x.shape == (1, 8, 8, 5)


def test_num_blocks_rejects_bad_sizes():
    assert num_blocks(64) == 4
    with pytest.raises(ValueError, match="power of two"):
        num_blocks(48)


def test_build_models_from_config_and_registry():
    g, d = build_models(Config(image_size=16, g_width=4, d_width=4, conditional=False))
    assert isinstance(g, Generator) and isinstance(d, Discriminator)
    with pytest.raises(ValueError, match="unknown gan 'stylegan9'; expected one of dcgan, acgan, wgan-gp, hinge"):
        build_models(Config(gan="stylegan9"))


def _cbn_pair(**kw):
    """A conditional generator with cbn and one without, 16 px, 3 hair and 2 eye classes, called once."""
    plain, cbn = (Generator(16, noise_dim=8, width=4, num_hair=3, num_eye=2, depth=2, cbn=c, **kw)
                  for c in (False, True))
    z = tf.random.stateless_normal([6, 8], seed=[1, 2])
    labels = (tf.constant([0, 1, 2, 0, 1, 2]), tf.constant([0, 1, 0, 1, 0, 1]))
    plain(z, labels), cbn(z, labels)
    return plain, cbn, z, labels


def test_conditional_batch_norm_takes_scale_and_offset_from_the_labels():
    """g_cbn: each of the generator's batch norms (no scale or offset of its own) is followed by (1 + gamma(y)) and
    + beta(y), dense layers on the one-hot hair and eye vectors that start at zero; so a new cbn generator draws
    what the plain one with the same weights draws, and the labels reach the images through the norms alone."""
    from gan_anime.models.layers import ConditionalBatchNorm
    plain, cbn, z, labels = _cbn_pair()
    norms = [l for l in cbn._flatten_layers() if isinstance(l, ConditionalBatchNorm)]
    assert sorted(l.name for l in norms) == ["g0_bn", "g0_bn1", "seed_bn"] and cbn.get_config()["cbn"] is True
    assert sorted(tuple(l.gamma.kernel.shape) for l in norms) == [(5, 4), (5, 4), (5, 8)]   # 5 = 3 hair + 2 eye
    # The same convolutions and dense layers, in the same order, once the plain norms' own gamma/beta are left out.
    def core(g):
        return [w for w in g.weights if not any(k in w.path for k in ("gamma", "beta", "moving"))]
    assert [tuple(w.shape) for w in core(cbn)] == [tuple(w.shape) for w in core(plain)]
    for p, c in zip(core(plain), core(cbn)):
        c.assign(p)
    assert np.allclose(cbn(z, labels, training=True), plain(z, labels, training=True), atol=1e-5)
    # With the labels' rows of the first dense layer zeroed, only the norms can carry the labels.
    kernel = cbn.project.kernel
    kernel.assign(tf.concat([kernel[:8], tf.zeros_like(kernel[8:])], 0))
    same_z = tf.repeat(z[:1], 3, axis=0)
    hair = (tf.constant([0, 1, 2]), tf.constant([1, 1, 1]))
    faces = cbn(same_z, hair, training=True).numpy()
    assert np.allclose(faces[0], faces[1], atol=1e-6) and np.allclose(faces[1], faces[2], atol=1e-6)
    for i, norm in enumerate(norms):
        norm.gamma.kernel.assign(tf.random.stateless_normal(norm.gamma.kernel.shape, seed=[7, i]) * 0.5)
        norm.beta.kernel.assign(tf.random.stateless_normal(norm.beta.kernel.shape, seed=[8, i]) * 0.5)
    faces = cbn(same_z, hair, training=True).numpy()
    assert np.abs(faces[0] - faces[1]).mean() > 1e-3 and np.abs(faces[1] - faces[2]).mean() > 1e-3
    # Soft label vectors (interpolation) give what the class indices give.
    soft = (tf.one_hot(labels[0], 3), tf.one_hot(labels[1], 2))
    assert np.allclose(cbn(z, soft), cbn(z, labels), atol=1e-6)


@pytest.mark.parametrize("kw", [dict(residual=True, out_width=4), dict(skip=True)], ids=["residual-out", "skip"])
def test_conditional_batch_norm_checkpoints_every_weight(tmp_path, kw):
    """Every weight of a cbn generator (also residual, out_width and skip ones) is in its checkpoint, and a fresh
    generator restored from it draws the same faces."""
    _, cbn, z, labels = _cbn_pair(**kw)
    _assert_checkpoint_holds_every_weight(
        cbn, Generator(16, noise_dim=8, width=4, num_hair=3, num_eye=2, depth=2, cbn=True, **kw), z, labels, tmp_path)


def _assert_checkpoint_holds_every_weight(g, fresh, z, labels, tmp_path):
    """Every weight of the called generator ``g`` is in its checkpoint, and ``fresh`` (built the same way, not
    called yet) restored from it draws the same faces."""
    for w in g.weights:   # away from the initial values, which a missing restore would also give
        w.assign(tf.random.stateless_normal(w.shape, seed=[len(w.path), 3]) * 0.1 + (1.0 if "variance" in w.path else 0))
    path = tf.train.Checkpoint(g=g).save(str(tmp_path / "c"))
    stored = [n for n, _ in tf.train.list_variables(path) if "VARIABLE_VALUE" in n and "save_counter" not in n]
    assert len(stored) == len(g.weights)
    fresh(z, labels)
    tf.train.Checkpoint(g=fresh).restore(path).assert_consumed()
    assert np.allclose(fresh(z, labels), g(z, labels), atol=1e-6)
    return stored


def test_conditional_batch_norm_needs_labels():
    from gan_anime.config import validate
    with pytest.raises(ValueError, match="g_cbn needs a conditional run"):
        validate(Config(g_cbn=True, conditional=False))
    validate(Config(g_cbn=True))     # conditional decided by the data: the built-in faces have tags
    with pytest.raises(ValueError, match="g_cbn must be true or false"):
        validate(Config(g_cbn="yes"))
    a = Config()
    assert set(a.architecture_diff(a.replace(g_cbn=True))) == {"g_cbn"}
    with pytest.raises(ValueError, match="cbn needs a conditional generator"):
        Generator(16, noise_dim=8, width=4, cbn=True)


def test_skip_layer_excitation_gates_channels_from_pooled_low_resolution_features():
    """SkipExcitation: high * sigmoid(excite(silu(squeeze(avgpool_to_4x4(low))))), one gate per image and channel."""
    from gan_anime.models.layers import SkipExcitation
    layer = SkipExcitation(3, name="sle")
    high = tf.random.stateless_normal([2, 16, 16, 3], seed=[1, 2])
    low = tf.random.stateless_normal([2, 8, 8, 5], seed=[3, 4])
    layer(high, low)
    assert tuple(layer.squeeze.kernel.shape) == (4, 4, 5, 3) and tuple(layer.excite.kernel.shape) == (1, 1, 3, 3)
    layer.squeeze.kernel.assign(tf.random.stateless_normal([4, 4, 5, 3], seed=[5, 6]) * 0.3)
    layer.excite.kernel.assign(tf.random.stateless_normal([1, 1, 3, 3], seed=[7, 8]))
    pooled = low.numpy().reshape(2, 4, 2, 4, 2, 5).mean(axis=(2, 4))                 # 8x8 -> 4x4
    s = np.einsum("bhwc,hwcd->bd", pooled, layer.squeeze.kernel.numpy())             # the 4x4 valid convolution
    s = s / (1 + np.exp(-s))                                                          # Swish
    gates = 1 / (1 + np.exp(-(s @ layer.excite.kernel.numpy()[0, 0])))              # [2, 3]
    assert np.allclose(layer(high, low), high.numpy() * gates[:, None, None, :], atol=1e-5)
    assert np.abs(gates[0] - gates[1]).max() > 1e-3                                   # each image its own gates
    # low features already 4x4 are not pooled
    assert np.allclose(layer(high, tf.constant(pooled)), high.numpy() * gates[:, None, None, :], atol=1e-5)


def test_sle_generator_gates_the_16_and_32_px_blocks_from_the_4_and_8_px_features():
    """g_sle at 64 px: the plain generator's weights plus two gates, 16 px from the seed and 32 px from the first
    block's 8 px; with the gates at 1/2 (excite zeroed) and batch norm in inference mode (linear at its initial
    statistics), everything after a gate is positively homogeneous, so the images are tanh(atanh(plain) / 4)."""
    from gan_anime.benchmark import HEAVY_OPS, forward_flops, graph_flops
    from gan_anime.models.layers import SkipExcitation
    plain, sle = (Generator(64, noise_dim=8, width=2, depth=2, sle=s) for s in (False, True))
    z = tf.random.stateless_normal([4, 8], seed=[1, 2])
    plain(z), sle(z)
    gates = [sle.sle1, sle.sle2]
    assert not hasattr(sle, "sle0") and not hasattr(sle, "sle3") and sle.get_config()["sle"] is True
    seen = {}
    for gate in gates:
        call = gate.call

        def spy(high, low, gate=gate, call=call):
            seen[gate.name] = (tuple(high.shape[1:]), tuple(low.shape[1:]))
            return call(high, low)
        gate.call = spy
    sle(z)
    assert seen == {"sle1": ((16, 16, 4), (4, 4, 16)), "sle2": ((32, 32, 2), (8, 8, 8))}
    by_path = {_layer_path(w): w for w in sle.weights}
    assert set(by_path) - {_layer_path(w) for w in plain.weights} == {("squeeze", "kernel"), ("excite", "kernel")} and \
        len(sle.weights) == len(plain.weights) + 4 and all(isinstance(g, SkipExcitation) for g in gates)
    for i, w in enumerate(plain.weights):   # kernels large enough for images well away from 0; norms as built
        if "kernel" in w.path:
            w.assign(tf.random.stateless_normal(w.shape, seed=[i, 1]) * (0.3 if "project" in w.path else 0.2))
        by_path[_layer_path(w)].assign(w)
    for gate in gates:
        gate.squeeze.kernel.assign(tf.random.stateless_normal(gate.squeeze.kernel.shape, seed=[3, 4]))
        gate.excite.kernel.assign(tf.zeros_like(gate.excite.kernel))
    faces = plain(z).numpy().astype(np.float64)
    assert np.abs(faces).mean() > 0.01 and np.abs(faces).max() < 0.999   # away from 0 and from tanh's saturation
    expected = np.tanh(np.arctanh(faces) / 4)
    assert np.allclose(sle(z), expected, rtol=1e-4, atol=1e-6)
    gates[1].excite.kernel.assign(tf.random.stateless_normal(gates[1].excite.kernel.shape, seed=[5, 6]))
    assert np.abs(sle(z).numpy() - expected).mean() > 1e-3
    # the hand count adds exactly the gates' two convolutions each
    traced = [graph_flops(tf.function(lambda x, g=g: g(x)).get_concrete_function(tf.TensorSpec([1, 8])), HEAVY_OPS)
              for g in (plain, sle)]
    cfg = Config(image_size=64, noise_dim=8, g_width=2, g_depth=2)
    hand = forward_flops(cfg.replace(g_sle=True))["G"] - forward_flops(cfg)["G"]
    assert traced[1] - traced[0] == hand == 2 * (16 * 16 * 4 + 4 * 4) + 2 * (16 * 8 * 2 + 2 * 2)


def test_sle_generator_checkpoints_and_validates(tmp_path):
    from gan_anime.config import validate
    kw = dict(noise_dim=8, width=4, num_hair=3, num_eye=2, depth=2, sle=True)
    g = Generator(32, **kw)
    z, labels = tf.random.stateless_normal([3, 8], seed=[1, 2]), (tf.constant([0, 1, 2]), tf.constant([0, 1, 0]))
    g(z, labels)
    stored = _assert_checkpoint_holds_every_weight(g, Generator(32, **kw), z, labels, tmp_path)
    assert any("sle1" in n for n in stored)
    with pytest.raises(ValueError, match="g_sle needs image_size >= 32 .a generator block at 16 px to gate., got 16"):
        validate(Config(image_size=16, g_sle=True))
    with pytest.raises(ValueError, match="g_sle must be true or false"):
        validate(Config(g_sle=1))
    with pytest.raises(ValueError, match="sle needs images of 32 px or more"):
        Generator(16, noise_dim=8, width=4, sle=True)
    a = Config()
    assert set(a.architecture_diff(a.replace(g_sle=True))) == {"g_sle"}
    g, _ = build_models(Config(image_size=32, g_width=4, d_width=4, g_sle=True, conditional=False))
    assert g.sle and g(tf.zeros([2, 100])).shape == (2, 32, 32, 3)
