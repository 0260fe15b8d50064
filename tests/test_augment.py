"""DiffAugment: exact transforms on hand-made images, the ranges of the random draws, determinism
under a seed, gradients, tf.function/XLA, and policy validation."""

import numpy as np
import pytest
import tensorflow as tf

from gan_anime.data import augment
from gan_anime.data.augment import (POLICIES, brightness, contrast, cutout, diff_augment, parse_policy,
                                    saturation, translate)

ALL = ["color", "translation", "cutout", "color,translation,cutout"]
SEED = tf.constant([7, 11])


def images(batch=8, h=16, w=16, seed=0):
    return tf.random.stateless_uniform([batch, h, w, 3], [seed, 1], minval=-1.0, maxval=1.0)


def distinct_image(batch, h=16, w=16):
    """Every pixel of every sample different and non-zero, so a shift can be read back."""
    x = np.arange(1, h * w * 3 + 1, dtype=np.float32).reshape(1, h, w, 3) / (h * w * 3)
    return tf.constant(np.repeat(x, batch, axis=0))


# ---------------------------------------------------------------- shapes, seeds, policies
@pytest.mark.parametrize("policy", ALL)
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_shape_and_dtype_kept(policy, dtype):
    x = tf.cast(images(4, 16, 8), dtype)
    y = diff_augment(x, policy, SEED)
    assert y.shape == x.shape and y.dtype == dtype


@pytest.mark.parametrize("policy", ALL)
def test_same_seed_same_output_other_seed_other_output(policy):
    x = images()
    a = diff_augment(x, policy, SEED).numpy()
    np.testing.assert_array_equal(a, diff_augment(x, policy, tf.constant([7, 11])).numpy())
    np.testing.assert_array_equal(a, diff_augment(x, policy, tf.constant([7, 11], tf.int64)).numpy())
    assert not np.array_equal(a, diff_augment(x, policy, tf.constant([7, 12])).numpy())
    assert not np.array_equal(a, diff_augment(x, policy, tf.constant([8, 11])).numpy())


@pytest.mark.parametrize("policy", ALL)
def test_each_policy_changes_every_image(policy):
    x = images(16)
    y = diff_augment(x, policy, SEED)
    changed = tf.reduce_any(tf.not_equal(x, y), axis=[1, 2, 3]).numpy()
    # translation by (0, 0) leaves an image as it is: 1 in 25 for 16 px; the others change all
    assert changed.mean() >= (0.8 if policy == "translation" else 1.0), changed


def test_each_policy_has_its_own_stream():
    x = images()
    both = diff_augment(x, "translation,cutout", SEED)
    one_by_one = diff_augment(diff_augment(x, "translation", SEED), "cutout", SEED)
    np.testing.assert_array_equal(both.numpy(), one_by_one.numpy())
    # streams by name, not by position: "translation" draws the same shifts after "color"
    shifted = diff_augment(x, "translation", SEED)
    after_color = diff_augment(x, "color,translation", SEED)
    np.testing.assert_array_equal(shifted.numpy() == 0, after_color.numpy() == 0)
    # and each policy's stream is its own (none is the caller's seed itself)
    seeds = {tuple(augment._substream(augment._check_seed(SEED), augment._STREAMS[n]).numpy()) for n in POLICIES}
    assert len(seeds) == 3 and tuple(SEED.numpy()) not in seeds


@pytest.mark.parametrize("policy", ["", "  ", [], ()])
def test_empty_policy_is_identity(policy):
    x = images()
    assert parse_policy(policy) == ()
    np.testing.assert_array_equal(diff_augment(x, policy, SEED).numpy(), x.numpy())


def test_parse_policy():
    assert parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy(" cutout , color ") == ("cutout", "color")
    assert parse_policy(["translation"]) == ("translation",)
    assert set(POLICIES) == {"color", "translation", "cutout"}


@pytest.mark.parametrize("bad", ["colour", "color,flip", "color,,cutout", ["color", "zoom"], "color,color"])
def test_bad_policy_lists_valid_ones(bad):
    with pytest.raises(ValueError, match="color, cutout, translation"):
        parse_policy(bad)
    with pytest.raises(ValueError, match="color, cutout, translation"):
        diff_augment(images(2), bad, SEED)


def test_bad_seed_and_images():
    with pytest.raises(TypeError, match="seed"):
        diff_augment(images(2), "color", tf.constant([1.0, 2.0]))
    with pytest.raises(ValueError, match="shape \\[2\\]"):
        diff_augment(images(2), "color", tf.constant([1, 2, 3]))
    with pytest.raises(TypeError, match="floating"):
        diff_augment(tf.zeros([2, 8, 8, 3], tf.uint8), "color", SEED)


# ---------------------------------------------------------------- color
def test_color_transforms_exact():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 4, 5, 3)).astype(np.float32)
    m = np.array([-0.5, 0.1, 0.4], np.float32)
    np.testing.assert_allclose(brightness(tf.constant(x), m).numpy(), x + m[:, None, None, None], atol=1e-6)
    f = np.array([0.0, 1.0, 2.0], np.float32)[:, None, None, None]
    mean_c = x.mean(axis=3, keepdims=True)
    np.testing.assert_allclose(saturation(tf.constant(x), f[:, 0, 0, 0]).numpy(), (x - mean_c) * f + mean_c,
                               atol=1e-6)
    mean_all = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(contrast(tf.constant(x), f[:, 0, 0, 0]).numpy(), (x - mean_all) * f + mean_all,
                               atol=1e-6)


def test_color_draw_ranges():
    """Official ranges: brightness U[-0.5, 0.5), saturation U[0, 2), contrast U[0.5, 1.5), per sample."""
    n = 512
    # A grey image of value v: saturation and contrast leave it alone, so out = v + brightness.
    v = np.linspace(-0.9, 0.9, n, dtype=np.float32)
    grey = tf.constant(np.broadcast_to(v[:, None, None, None], (n, 4, 4, 3)).copy())
    b = (diff_augment(grey, "color", SEED).numpy() - grey.numpy())
    assert np.ptp(b, axis=(1, 2, 3)).max() < 1e-6          # one offset per image
    b = b[:, 0, 0, 0]
    assert -0.5 <= b.min() < -0.48 and 0.48 < b.max() < 0.5, (b.min(), b.max())
    # Pixels (a, -a, 0): channel and image means are 0, so out = b + contrast * saturation * (a, -a, 0).
    a = np.float32(0.5)
    colourful = tf.constant(np.broadcast_to(np.array([a, -a, 0], np.float32), (n, 4, 4, 3)).copy())
    out = diff_augment(colourful, "color", SEED).numpy()[:, 0, 0]
    b = out[:, 2]
    product = (out[:, 0] - b) / a                            # contrast * saturation, in [0, 3)
    np.testing.assert_allclose(out[:, 1] - b, -a * product, atol=1e-5)
    assert product.min() >= 0 and product.min() < 0.05 and 2.5 < product.max() < 3.0, (product.min(), product.max())
    # three independent draws: brightness says nothing about saturation * contrast
    assert abs(np.corrcoef(b, product)[0, 1]) < 0.2


def test_color_moves_image_mean_by_brightness_only():
    """Saturation keeps pixel means, contrast the image mean: the image mean moves by b, |b| <= 0.5."""
    x = images(64)
    y = diff_augment(x, "color", SEED)
    shift = (tf.reduce_mean(y, axis=[1, 2, 3]) - tf.reduce_mean(x, axis=[1, 2, 3])).numpy()
    assert np.abs(shift).max() <= 0.5 + 1e-6 and np.abs(shift).max() > 0.3


# ---------------------------------------------------------------- translation
def test_translate_hand_made():
    x = tf.constant(np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1))
    out = translate(tf.concat([x, x], 0), tf.constant([1, -2]), tf.constant([-1, 3]))[..., 0].numpy()
    np.testing.assert_array_equal(out[0], [[0, 0, 0, 0],      # content down 1, left 1
                                           [2, 3, 4, 0],
                                           [6, 7, 8, 0],
                                           [10, 11, 12, 0]])
    np.testing.assert_array_equal(out[1], [[0, 0, 0, 9],      # content up 2, right 3
                                           [0, 0, 0, 13],
                                           [0, 0, 0, 0],
                                           [0, 0, 0, 0]])


def find_shift(out, x, max_shift):
    """The one (dy, dx) with |dy|, |dx| <= max_shift whose translation of ``x`` is ``out``: every candidate
    shift of ``x`` made in one batched call."""
    shifts = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)]
    dys, dxs = (tf.constant(v) for v in zip(*shifts))
    moved = translate(tf.repeat(x[None], len(shifts), axis=0), dys, dxs).numpy()
    hits = [s for s, m in zip(shifts, moved) if np.array_equal(out, m)]
    assert len(hits) == 1, hits
    return hits[0]


@pytest.mark.parametrize("h,w", [(16, 16), (16, 8)])
def test_translation_whole_pixels_zero_padding_official_range(h, w):
    n = 96
    x = distinct_image(n, h, w)
    y = diff_augment(x, "translation", SEED).numpy()
    shifts = [find_shift(y[i], x[i], max(h, w) // 4) for i in range(n)]   # searched wider than allowed
    dys, dxs = zip(*shifts)
    assert set(dys) == set(range(-(h // 8), h // 8 + 1)), sorted(set(dys))   # [-H/8, H/8], all of them
    assert set(dxs) == set(range(-(w // 8), w // 8 + 1)), sorted(set(dxs))
    assert abs(np.corrcoef(dys, dxs)[0, 1]) < 0.3                         # drawn independently
    # every output value is an input pixel of the same sample or a zero from the padding
    assert set(np.unique(y)) <= set(np.unique(x.numpy())) | {0.0}


# ---------------------------------------------------------------- cutout
def test_cutout_hand_made():
    x = tf.ones([2, 8, 8, 1])
    out = cutout(x, tf.constant([4, 0]), tf.constant([4, 7]), 4, 4)[..., 0].numpy()
    expected = np.ones((2, 8, 8), np.float32)
    expected[0, 2:6, 2:6] = 0          # rows/cols [c - 2, c + 2)
    expected[1, 0:2, 5:8] = 0          # clipped at the top and right edges
    np.testing.assert_array_equal(out, expected)


def band(mask_1d):
    idx = np.flatnonzero(mask_1d)
    assert len(idx) and np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)), idx   # one contiguous run
    return idx[0], len(idx)


@pytest.mark.parametrize("h,w", [(16, 16), (16, 8)])
def test_cutout_zeroes_a_clipped_square_of_half_size(h, w):
    n = 256
    x = tf.constant(np.full((n, h, w, 3), 0.5, np.float32))
    y = diff_augment(x, "cutout", SEED).numpy()
    hole = y[..., 0] == 0
    assert np.array_equal(hole[..., None].repeat(3, -1), y == 0)          # all channels or none
    assert np.all(y[~np.repeat(hole[..., None], 3, -1)] == 0.5)           # the rest untouched
    sizes, starts_y, starts_x = [], [], []
    for m in hole:
        rows, cols = m.any(axis=1), m.any(axis=0)
        (y0, ny), (x0, nx) = band(rows), band(cols)
        assert np.array_equal(m, np.outer(rows, cols))                    # a rectangle
        # (H/2) x (W/2), cut only where it meets an edge, never below half its size
        assert ny == h // 2 or y0 == 0 or y0 + ny == h, (y0, ny)
        assert nx == w // 2 or x0 == 0 or x0 + nx == w, (x0, nx)
        assert h // 4 <= ny <= h // 2 and w // 4 <= nx <= w // 2
        sizes.append((ny, nx))
        starts_y.append(y0)
        starts_x.append(x0)
    assert abs(np.corrcoef(starts_y, starts_x)[0, 1]) < 0.3                # centres drawn independently
    assert (h // 2, w // 2) in sizes                                       # often the whole square
    # centres reach 0 and H (the official range for an even size): clipped to a quarter at both edges
    assert any(s == (h // 4, w // 2) and y0 == 0 for s, y0 in zip(sizes, starts_y))
    assert any(s == (h // 4, w // 2) and y0 == h - h // 4 for s, y0 in zip(sizes, starts_y))


# ---------------------------------------------------------------- range, gradients, tf.function / XLA
@pytest.mark.parametrize("policy", ["translation", "cutout", "translation,cutout"])
def test_geometric_policies_keep_values_in_range(policy):
    x = images(32)
    y = diff_augment(x, policy, SEED).numpy()
    assert -1.0 <= y.min() and y.max() <= 1.0


@pytest.mark.parametrize("policy", ALL)
def test_gradients_flow_and_are_finite(policy):
    x = images(8)
    r = tf.random.stateless_normal(x.shape, [3, 4])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(diff_augment(x, policy, SEED) * r)
    g = tape.gradient(loss, x)
    assert g is not None
    g = g.numpy()
    assert np.isfinite(g).all()
    assert (np.abs(g).reshape(8, -1).max(axis=1) > 0).all()                # every sample gets a gradient


def test_geometric_gradients_reach_exactly_the_kept_pixels():
    x = tf.constant(np.full((32, 16, 16, 3), 0.5, np.float32))
    for policy in ("translation", "cutout"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = diff_augment(x, policy, SEED)
            total = tf.reduce_sum(y)
        g = tape.gradient(total, x).numpy()
        # d sum(y) / dx is 1 for each input pixel that lands in the output, else 0
        assert set(np.unique(g)) <= {0.0, 1.0}
        np.testing.assert_array_equal(g.reshape(32, -1).sum(1), (y.numpy() != 0).reshape(32, -1).sum(1))
    r = tf.random.stateless_normal([2, 6, 6, 1], [5, 6])
    z = tf.random.stateless_normal([2, 6, 6, 1], [7, 8])
    dy, dx = tf.constant([2, -1]), tf.constant([-3, 1])
    with tf.GradientTape() as tape:
        tape.watch(z)
        inner = tf.reduce_sum(translate(z, dy, dx) * r)
    # the adjoint of a zero-filled shift is the opposite shift
    np.testing.assert_allclose(tape.gradient(inner, z).numpy(), translate(r, -dy, -dx).numpy(), atol=1e-6)


@pytest.mark.parametrize("policy", ALL)
def test_tf_function_and_xla_match_eager(policy):
    x = images(8)

    def aug_and_grad(x, seed):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = diff_augment(x, policy, seed)
            loss = tf.reduce_sum(tf.square(y))
        return y, tape.gradient(loss, x)

    eager_y, eager_g = aug_and_grad(x, SEED)
    dynamic = tf.function(aug_and_grad, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                                         tf.TensorSpec([2], tf.int32)])
    xla = tf.function(aug_and_grad, jit_compile=True)
    for fn in (dynamic, xla):
        y, g = fn(x, SEED)
        np.testing.assert_allclose(y.numpy(), eager_y.numpy(), atol=1e-5)
        np.testing.assert_allclose(g.numpy(), eager_g.numpy(), atol=1e-5)
        assert np.isfinite(g.numpy()).all()
    # a new seed is a new input, not a retrace with stale randomness
    np.testing.assert_allclose(xla(x, tf.constant([1, 2]))[0].numpy(),
                               aug_and_grad(x, tf.constant([1, 2]))[0].numpy(), atol=1e-5)
