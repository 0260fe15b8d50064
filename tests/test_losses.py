"""Exact values of each loss, computed by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from gan_anime.losses import (LOSSES, get_loss, hinge, lecam_penalty, least_squares, nonsaturating, r1_penalty,
                              top_k_fraction, top_k_weights)


def softplus(x):
    return math.log1p(math.exp(x))


def test_nonsaturating_exact():
    d, g = nonsaturating(tf.constant([2.0, -1.0]), tf.constant([0.5, -3.0]))
    # -log(sigmoid(x)) = softplus(-x);  -log(1 - sigmoid(x)) = softplus(x)
    np.testing.assert_allclose(d.numpy(), [softplus(-2.0) + softplus(0.5), softplus(1.0) + softplus(-3.0)], rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), [softplus(-0.5), softplus(3.0)], rtol=1e-6)


def test_nonsaturating_at_zero_is_log2():
    d, g = nonsaturating(tf.zeros([3, 1]), tf.zeros([3, 1]))
    np.testing.assert_allclose(d.numpy(), [2 * math.log(2)] * 3, rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), [math.log(2)] * 3, rtol=1e-6)


def test_nonsaturating_label_smoothing():
    d, _ = nonsaturating(tf.constant([1.0]), tf.constant([0.0]), label_smoothing=0.1)
    # BCE with target 0.9: 0.9 * softplus(-1) + 0.1 * softplus(1); fake at 0: log 2
    expected = 0.9 * softplus(-1.0) + 0.1 * softplus(1.0) + math.log(2)
    np.testing.assert_allclose(d.numpy(), [expected], rtol=1e-6)


def test_hinge_exact():
    d, g = hinge(tf.constant([2.0, 0.5]), tf.constant([-2.0, 0.25]))
    np.testing.assert_allclose(d.numpy(), [0.0 + 0.0, 0.5 + 1.25], rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), [2.0, -0.25], rtol=1e-6)


def test_least_squares_exact():
    d, g = least_squares(tf.constant([1.0, 3.0]), tf.constant([0.0, 2.0]))
    np.testing.assert_allclose(d.numpy(), [0.0, 0.5 * 4 + 0.5 * 4], rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), [0.5, 0.5], rtol=1e-6)


def test_one_signature_and_shape():
    for fn in LOSSES.values():
        d, g = fn(tf.zeros([5]), tf.zeros([5, 1]))
        assert d.shape == (5,) and g.shape == (5,)


def test_unknown_loss_lists_valid_ones():
    with pytest.raises(ValueError, match="nonsaturating"):
        get_loss("wasserstein-ish")


def test_r1_penalty_exact():
    grads = tf.constant([[[[1.0, 2.0]], [[0.0, -2.0]]], [[[0.5, 0.0]], [[0.0, 0.0]]]])   # [2, 2, 1, 2]
    # gamma/2 * sum of squares per example: 10/2 * (1 + 4 + 0 + 4) and 10/2 * 0.25
    np.testing.assert_allclose(r1_penalty(grads, 10.0).numpy(), [45.0, 1.25], rtol=1e-6)


def test_top_k_weights_keep_the_highest_scored_fakes():
    logits = tf.constant([0.5, -1.0, 2.0, 0.0])
    np.testing.assert_allclose(top_k_weights(logits, 0.5).numpy(), [2.0, 0.0, 2.0, 0.0])   # k = 2 of 4: mean of 2
    np.testing.assert_allclose(top_k_weights(logits, 0.6).numpy(), [4 / 3, 0.0, 4 / 3, 4 / 3])   # k = ceil(2.4)
    np.testing.assert_allclose(top_k_weights(logits, 0.01).numpy(), [0.0, 0.0, 4.0, 0.0])   # at least one
    np.testing.assert_allclose(top_k_weights(logits, 1.0).numpy(), [1.0] * 4)
    np.testing.assert_allclose(top_k_weights(tf.zeros([3, 1]), 0.5).numpy(), [1.5, 1.5, 0.0])   # ties: stable


def test_top_k_fraction_decays_per_epoch_to_its_floor():
    assert float(top_k_fraction(0.5, 0.9, 0)) == 1.0
    assert float(top_k_fraction(0.5, 0.9, tf.constant(3, tf.int64))) == pytest.approx(0.729)
    assert float(top_k_fraction(0.5, 0.9, 10)) == 0.5


def test_lecam_penalty_exact():
    """Only a real logit above the fake anchor and a fake logit below the real anchor are penalised, squared."""
    real = tf.constant([2.0, -1.0, 0.5])
    fake = tf.constant([-3.0, 1.0, 0.0])
    got = lecam_penalty(real, fake, anchor_real=0.5, anchor_fake=-0.5, weight=0.3).numpy()
    np.testing.assert_allclose(got, [0.3 * (6.25 + 12.25), 0.0, 0.3 * (1.0 + 0.25)], rtol=1e-6)
