"""Wasserstein loss and WGAN-GP gradient penalty against hand-computed values; spectral normalisation
(largest singular value, gradient through sigma, state updates, tf.function/XLA, two replicas)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_anime.losses import LOSSES, get_loss, gradient_penalty, wasserstein
from gan_anime.models.dcgan import Discriminator
from gan_anime.models.layers import SpectralNorm, spectral_norm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- Wasserstein
def test_wasserstein_exact():
    d, g = wasserstein(tf.constant([2.0, -1.0, 0.5]), tf.constant([[0.5], [-3.0], [4.0]]))
    np.testing.assert_allclose(d.numpy(), [0.5 - 2.0, -3.0 + 1.0, 4.0 - 0.5], rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), [-0.5, 3.0, -4.0], rtol=1e-6)
    assert d.dtype == g.dtype == tf.float32


def test_wasserstein_registered_and_ignores_label_smoothing():
    assert LOSSES["wasserstein"] is wasserstein and get_loss("wasserstein") is wasserstein
    a = wasserstein(tf.constant([1.0]), tf.constant([2.0]), label_smoothing=0.1)
    np.testing.assert_allclose(a[0].numpy(), [1.0])


# ---------------------------------------------------------------- gradient penalty
def linear_critic(w):
    """f(x) = sum(w * x) per example: its gradient is w everywhere."""
    return lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])


def batch(seed, shape=(4, 3, 3, 2)):
    return tf.random.stateless_normal(shape, [seed, 0])


@pytest.mark.parametrize("weight", [10.0, 2.5])
def test_gradient_penalty_linear_critic_exact(weight):
    w = tf.random.stateless_normal([3, 3, 2], [1, 2]) * 0.4
    alpha = tf.constant([0.0, 0.3, 0.7, 0.99])
    p = gradient_penalty(linear_critic(w), batch(1), batch(2), alpha, weight=weight)
    norm = float(np.linalg.norm(w.numpy()))
    assert p.shape == (4,) and p.dtype == tf.float32
    np.testing.assert_allclose(p.numpy(), [weight * (norm - 1.0) ** 2] * 4, rtol=1e-5)
    assert abs(norm - 1.0) > 0.2        # a case where the penalty is not ~0


def test_gradient_penalty_at_the_interpolated_point():
    """f(x) = sum(x^2) / 2 has gradient x, so the penalty is weight * (||a*real + (1-a)*fake|| - 1)^2."""
    real, fake = batch(3), batch(4) * 3.0
    alpha = tf.constant([0.1, 0.25, 0.5, 0.9])
    p = gradient_penalty(lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3]), real, fake, alpha)
    a = alpha.numpy()[:, None, None, None]
    x_hat = a * real.numpy() + (1 - a) * fake.numpy()
    expected = 10.0 * (np.linalg.norm(x_hat.reshape(4, -1), axis=1) - 1.0) ** 2
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-5)


def test_gradient_penalty_gradient_wrt_critic_weights():
    """d/dw sum_b weight (||w|| - 1)^2 = B * 2 weight (||w|| - 1) w / ||w||: the second-order path."""
    w = tf.Variable(tf.random.stateless_normal([3, 3, 2], [5, 6]) * 0.3)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(gradient_penalty(linear_critic(w), batch(1), batch(2), tf.fill([4], 0.5)))
    g = tape.gradient(total, w).numpy()
    norm = np.linalg.norm(w.numpy())
    np.testing.assert_allclose(g, 4 * 2 * 10.0 * (norm - 1.0) * w.numpy() / norm, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_finite_gradient_when_critic_gradient_is_zero():
    w = tf.Variable(tf.zeros([3, 3, 2]))                 # f(x) = 0 * x: zero gradient at every x_hat
    alpha = tf.fill([4], 0.5)

    def grad_of_penalty(**kw):
        with tf.GradientTape() as tape:
            p = gradient_penalty(linear_critic(w), batch(1), batch(2), alpha, **kw)
            total = tf.reduce_sum(p)
        return p.numpy(), tape.gradient(total, w).numpy()

    p, g = grad_of_penalty()
    np.testing.assert_allclose(p, [10.0] * 4, rtol=1e-5)    # (sqrt(eps) - 1)^2 ~ 1
    assert np.isfinite(g).all()
    np.testing.assert_array_equal(g, 0.0)
    _, g_no_eps = grad_of_penalty(epsilon=0.0)             # why epsilon is there: d sqrt(s)/ds at 0
    assert np.isnan(g_no_eps).all()


def test_gradient_penalty_constant_critic():
    p = gradient_penalty(lambda x: tf.zeros([tf.shape(x)[0]]), batch(1), batch(2), tf.fill([4], 0.5))
    np.testing.assert_allclose(p.numpy(), [10.0] * 4, rtol=1e-5)


def test_gradient_penalty_is_per_example_with_a_conditional_critic():
    """A real (conditional) discriminator without cross-batch layers, labels closed over:
    the batch's penalties equal each example's penalty computed alone."""
    d = Discriminator(16, width=4, num_hair=3, num_eye=2, norm="none", mbstd_group=0)
    real, fake = batch(1, (4, 16, 16, 3)), batch(2, (4, 16, 16, 3))
    hair, eye = tf.constant([0, 1, 2, 1]), tf.constant([1, 0, 0, 1])
    alpha = tf.constant([0.2, 0.4, 0.6, 0.8])
    p = gradient_penalty(lambda x: d(x, (hair, eye), training=True), real, fake, alpha)
    alone = [gradient_penalty(lambda x: d(x, (hair[i:i + 1], eye[i:i + 1]), training=True), real[i:i + 1],
                              fake[i:i + 1], alpha[i:i + 1]).numpy()[0] for i in range(4)]
    np.testing.assert_allclose(p.numpy(), alone, rtol=1e-4)
    assert np.ptp(p.numpy()) > 0
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(gradient_penalty(lambda x: d(x, (hair, eye), training=True), real, fake, alpha))
    grads = {v.path: None if g is None else tf.convert_to_tensor(g)     # embeddings: IndexedSlices
             for v, g in zip(d.trainable_variables, tape.gradient(total, d.trainable_variables))}
    # a piecewise-linear critic's input gradient does not depend on its biases (None or 0 there)
    assert all(g is None or np.isfinite(g.numpy()).all() for g in grads.values())
    kernels = [g for name, g in grads.items() if name.endswith(("kernel", "embeddings"))]
    assert len(kernels) == 6 and all(np.abs(g.numpy()).max() > 0 for g in kernels)


@pytest.mark.parametrize("jit", [False, True])
def test_gradient_penalty_in_tf_function(jit):
    w = tf.Variable(tf.random.stateless_normal([3, 3, 2], [1, 2]) * 0.4)
    alpha = tf.constant([0.0, 0.3, 0.7, 0.99])

    def step(real, fake):
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(gradient_penalty(linear_critic(w), real, fake, alpha))
        return total, tape.gradient(total, w)

    eager = step(batch(1), batch(2))
    compiled = tf.function(step, jit_compile=jit)(batch(1), batch(2))
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)


# ---------------------------------------------------------------- spectral normalisation
def top_singular_value(kernel):
    k = np.asarray(kernel)
    return np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0]


def sn_layers():
    """Built (conv, x) and (dense, x) with fixed kernels far from sigma = 1 and a fixed start vector u."""
    init = keras.initializers.RandomNormal(stddev=0.5, seed=3)
    pairs = [(spectral_norm(keras.layers.Conv2D(8, 4, strides=2, padding="same", kernel_initializer=init)),
              tf.random.stateless_normal([4, 8, 8, 3], [1, 1])),
             (spectral_norm(keras.layers.Dense(6, kernel_initializer=init)),
              tf.random.stateless_normal([4, 10], [2, 2]))]
    for layer, x in pairs:
        layer(x)
        layer.u.assign(tf.random.stateless_normal(layer.u.shape, [4, 4]))
    return pairs


@pytest.mark.parametrize("index", [0, 1], ids=["conv2d", "dense"])
def test_spectral_norm_top_singular_value_is_one(index):
    layer, x = sn_layers()[index]
    assert top_singular_value(layer.layer.kernel.numpy()) > 1.5
    for _ in range(20):
        layer(x, training=True)
    assert abs(top_singular_value(layer.normalized_kernel().numpy()) - 1.0) < 0.02
    assert top_singular_value(layer.layer.kernel.numpy()) > 1.5     # the variable itself is left as it is


def test_spectral_norm_u_updates_only_in_training():
    layer, x = sn_layers()[0]
    u0 = layer.u.numpy().copy()
    a = layer(x, training=False).numpy()
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), a)   # inference is a pure function
    layer(x, training=True)
    assert not np.allclose(layer.u.numpy(), u0)
    assert [w.name for w in layer.non_trainable_weights] == ["u"]
    assert {w.name for w in layer.trainable_weights} == {"kernel", "bias"}


@pytest.mark.parametrize("index", [0, 1], ids=["conv2d", "dense"])
def test_spectral_norm_output_uses_the_normalised_kernel(index):
    layer, x = sn_layers()[index]
    inner = layer.layer
    inner.activation = keras.activations.get("tanh")
    inner.bias.assign(tf.random.stateless_normal(inner.bias.shape, [3, 3]))
    w = layer.normalized_kernel()     # from the stored u, as the next call computes it (and stores nothing)
    if index == 0:
        expected = tf.tanh(tf.nn.conv2d(x, w, strides=2, padding="SAME") + inner.bias).numpy()
    else:
        expected = tf.tanh(tf.matmul(x, w) + inner.bias).numpy()
    np.testing.assert_allclose(layer(x, training=False).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, atol=1e-5)
    # and the normalised kernel is the raw one over one number
    ratio = (layer.layer.kernel.numpy() / w.numpy()).ravel()
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)


def test_spectral_norm_gradient_flows_through_sigma():
    """W / sigma(W), sigma = v^T W u with u, v held constant, is unchanged by scaling W, so the
    gradient w.r.t. W is orthogonal to W (Euler).  A plain kernel's gradient (no sigma path) is not."""
    layer, x = sn_layers()[0]
    for _ in range(3):
        layer(x, training=True)
    target = tf.random.stateless_normal([4, 4, 4, 8], [9, 9])
    with tf.GradientTape(persistent=True) as tape:
        sn_loss = tf.reduce_sum(tf.square(layer(x, training=True) - target))
        plain_loss = tf.reduce_sum(tf.square(layer.layer(x) - target))
    kernel = layer.layer.kernel
    for loss, orthogonal in ((sn_loss, True), (plain_loss, False)):
        g = tape.gradient(loss, kernel.value).numpy()
        cosine = float(np.sum(g * kernel.numpy()) / (np.linalg.norm(g) * np.linalg.norm(kernel.numpy())))
        assert (abs(cosine) < 1e-4) == orthogonal, cosine


@pytest.mark.parametrize("jit", [False, True])
def test_spectral_norm_in_tf_function(jit):
    eager, x = sn_layers()[0]
    compiled, _ = sn_layers()[0]
    for a, b in zip(compiled.weights, eager.weights):
        a.assign(b)
    fn = tf.function(lambda t: compiled(t, training=True), jit_compile=jit)
    for _ in range(3):
        expected = eager(x, training=True)
        got = fn(x)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(compiled.u.numpy(), eager.u.numpy(), atol=1e-5)


def test_spectral_norm_rejects_other_layers_and_round_trips_config():
    with pytest.raises(TypeError, match="Conv2D or Dense"):
        spectral_norm(keras.layers.Conv2DTranspose(4, 3))
    with pytest.raises(ValueError, match="power_iterations"):
        spectral_norm(keras.layers.Dense(3), power_iterations=0)
    layer = spectral_norm(keras.layers.Dense(3), power_iterations=2)
    clone = SpectralNorm.from_config(layer.get_config())
    assert clone.power_iterations == 2 and isinstance(clone.layer, keras.layers.Dense)


MIRRORED_CHECK = textwrap.dedent('''
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from gan_anime.models.layers import spectral_norm

    def train(strategy):
        keras.utils.set_random_seed(1)
        with strategy.scope():
            model = keras.Sequential([spectral_norm(keras.layers.Conv2D(5, 3, strides=2)), keras.layers.LeakyReLU(0.2),
                                      keras.layers.Flatten(), spectral_norm(keras.layers.Dense(1))])
            model.build((None, 8, 8, 3))
            opt = keras.optimizers.Adam(1e-2)
            opt.build(model.trainable_variables)
        u0 = [w.numpy().copy() for w in model.weights if w.name == "u"]
        def replica_step(x):
            with tf.GradientTape() as tape:
                y = model(x, training=True)
                loss = tf.nn.compute_average_loss(tf.square(y[:, 0] - 1.0), global_batch_size=8)
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
        step = tf.function(lambda x: strategy.run(replica_step, args=(x,)))
        data = tf.data.Dataset.from_tensors(tf.random.stateless_normal([8, 8, 8, 3], [1, 2])).repeat(4)
        for x in strategy.experimental_distribute_dataset(data):
            step(x)
        u = [w.numpy() for w in model.weights if w.name == "u"]
        assert len(u) == 2 and not any(np.allclose(a, b) for a, b in zip(u0, u)), "u was not updated"
        return model

    one = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    worst = 0.0
    for a, b in zip(one.weights, two.weights):
        assert a.path.split("/")[-1] == b.path.split("/")[-1], (a.path, b.path)
        replicas = [v.numpy() for v in b.value.values]
        assert len(replicas) == 2 and np.array_equal(replicas[0], replicas[1]), b.path
        worst = max(worst, float(np.abs(a.numpy() - b.numpy()).max()))
    assert worst < 1e-5, worst
    print("OK", worst)
''')


def test_spectral_norm_two_replicas_match_one_device(tmp_path):
    script = tmp_path / "mirrored_sn.py"
    script.write_text(MIRRORED_CHECK)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "OK" in proc.stdout
