"""GAN losses as pure functions with one signature.

``d_loss, g_loss = loss(real_logits, fake_logits)``

real_logits, fake_logits: float32 [B] or [B, 1], unbounded discriminator logits.
Each returns per-example losses of shape [B]; the trainer averages them over the
*global* batch (``tf.nn.compute_average_loss``) so the result is the same on one
device or many.  Penalties (:func:`gradient_penalty`, :func:`r1_penalty`) are separate
functions that also return per-example values [B], added to D's per-example loss.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import tensorflow as tf

LossFn = Callable[..., Tuple[tf.Tensor, tf.Tensor]]


def _flat(x):
    return tf.reshape(tf.cast(x, tf.float32), [-1])


def nonsaturating(real_logits, fake_logits, label_smoothing: float = 0.0):
    """Goodfellow et al. 2014, the non-saturating variant used by DCGAN.

    D: -log sigmoid(real) - log(1 - sigmoid(fake));  G: -log sigmoid(fake).
    ``label_smoothing`` (one-sided, Salimans et al. 2016) makes the real target 1 - value.
    """
    real, fake = _flat(real_logits), _flat(fake_logits)
    target = tf.fill(tf.shape(real), 1.0 - label_smoothing)
    d_real = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=real)
    d_fake = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(fake), logits=fake)
    g = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(fake), logits=fake)
    return d_real + d_fake, g


def hinge(real_logits, fake_logits, label_smoothing: float = 0.0):
    """Hinge loss (Lim & Ye 2017; SAGAN, BigGAN).  D: relu(1 - real) + relu(1 + fake);  G: -fake."""
    del label_smoothing  # not defined for hinge
    real, fake = _flat(real_logits), _flat(fake_logits)
    return tf.nn.relu(1.0 - real) + tf.nn.relu(1.0 + fake), -fake


def least_squares(real_logits, fake_logits, label_smoothing: float = 0.0):
    """LSGAN (Mao et al. 2017), a-b-c = 0-1-1:  D: (real - 1)^2/2 + fake^2/2;  G: (fake - 1)^2/2."""
    real, fake = _flat(real_logits), _flat(fake_logits)
    target = 1.0 - label_smoothing
    return 0.5 * tf.square(real - target) + 0.5 * tf.square(fake), 0.5 * tf.square(fake - 1.0)


def wasserstein(real_logits, fake_logits, label_smoothing: float = 0.0):
    """WGAN (Arjovsky et al. 2017), as used with a gradient penalty by WGAN-GP (Gulrajani et al. 2017).

    D (the critic): fake - real;  G: -fake.  The logits are unbounded critic scores, so the critic
    needs a Lipschitz constraint: add :func:`gradient_penalty` to D's loss.
    """
    del label_smoothing  # not defined for the Wasserstein loss
    real, fake = _flat(real_logits), _flat(fake_logits)
    return fake - real, -fake


def generator_loss(loss: LossFn, fake_logits):
    """G's per-example loss [B] alone, for an update that computes no real logits (WGAN-GP's generator step).

    Every loss in :data:`LOSSES` gives G a loss that depends on the fake logits only, so the real
    logits passed here are a stand-in that never reaches the result.
    """
    return loss(fake_logits, fake_logits)[1]


def gradient_penalty(critic_fn: Callable[[tf.Tensor], tf.Tensor], real, fake, alpha, weight: float = 10.0,
                     epsilon: float = 1e-12):
    """WGAN-GP penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1).

    weight * (||grad_x critic_fn(x_hat)|| - 1)^2 at x_hat = alpha * real + (1 - alpha) * fake.

    critic_fn: images [B, H, W, C] -> logits [B] (or [B, 1]); close over labels for a conditional
      critic.  The per-example gradient is that of the *summed* logits, which is each example's own
      gradient only when the critic treats examples independently: no batch norm in training mode
      and no minibatch-stddev feature (the paper uses no batch norm in the critic).
    real, fake: float [B, H, W, C] (any shape [B, ...]); the same shape.
    alpha: float [B] in [0, 1), drawn per example by the caller (U[0, 1) in the paper), so a train
      step can use a stateless draw and stay replayable.
    weight: lambda, 10 in the paper.
    epsilon: added under the square root, sqrt(sum(g^2) + epsilon), so the penalty's own gradient
      stays finite (d sqrt/dx is infinite at 0) when the critic's gradient is zero.
    Returns float32 [B], to add to D's per-example loss.  Call it inside the tape that computes D's
    gradients: the gradient of the penalty w.r.t. D's weights is a second derivative.
    """
    real = tf.convert_to_tensor(real)
    fake = tf.cast(fake, real.dtype)
    a = tf.reshape(tf.cast(alpha, real.dtype), [-1] + [1] * (real.shape.rank - 1))
    x_hat = a * real + (1.0 - a) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        total = tf.reduce_sum(tf.cast(critic_fn(x_hat), tf.float32))
    grads = tape.gradient(total, x_hat, unconnected_gradients=tf.UnconnectedGradients.ZERO)  # constant critic: 0
    grads = tf.cast(grads, tf.float32)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=tf.range(1, tf.rank(grads))) + epsilon)
    return weight * tf.square(norm - 1.0)


def r1_penalty(real_grads, gamma: float):
    """R1 regulariser (Mescheder et al. 2018; StyleGAN): gamma/2 * ||grad_x D(x)||^2 at real images.

    real_grads: float [B, H, W, C], the gradient of D's logits w.r.t. the real images
    (per example: the gradient of the summed logits).  Returns float32 [B], added to D's loss.
    """
    g = tf.cast(real_grads, tf.float32)
    return 0.5 * gamma * tf.reduce_sum(tf.square(g), axis=tf.range(1, tf.rank(g)))


def top_k_fraction(top_k: float, decay: float, epochs_done) -> tf.Tensor:
    """Top-k training's kept fraction after ``epochs_done`` epochs: max(top_k, decay ** epochs_done), float32 [].

    Sinha et al. 2020 ("Top-k Training of GANs") start from the whole batch, since an untrained D's scores
    say little, and decay k by ``decay`` (gamma, 0.99) per epoch down to ``top_k`` (nu, 0.5) of it."""
    done = tf.cast(epochs_done, tf.float32)
    return tf.maximum(tf.constant(top_k, tf.float32), tf.pow(tf.constant(decay, tf.float32), done))


def top_k_weights(fake_logits, fraction) -> tf.Tensor:
    """Per-example weights [B] of G's loss that keep the ``fraction`` of fakes D scores highest (the most
    realistic), k = ceil(fraction * B) >= 1 of them, each weighted B / k so the batch mean is their mean.

    Top-k training (Sinha et al. 2020): the fakes D already rejects give G gradients that point away from
    the data's modes; dropping them from G's update improves FID at no arithmetic.  The ranking is by
    sorting, not ``tf.math.top_k``, so k may change from step to step under XLA.  On several replicas each
    ranks its own share of the batch."""
    logits = tf.stop_gradient(_flat(fake_logits))
    n = tf.shape(logits)[0]
    k = tf.maximum(1, tf.cast(tf.math.ceil(tf.cast(fraction, tf.float32) * tf.cast(n, tf.float32)), tf.int32))
    ranks = tf.argsort(tf.argsort(logits, direction="DESCENDING", stable=True), stable=True)   # 0: highest
    kept = tf.cast(ranks < k, tf.float32)
    return kept * (tf.cast(n, tf.float32) / tf.cast(k, tf.float32))


def lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake, weight: float):
    """LeCam regulariser (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited Data").

    weight * (relu(D(x) - a_fake)^2 + relu(a_real - D(G(z)))^2), per example [B]: D's logits on real images are
    held down toward the moving average ``anchor_fake`` of its logits on fakes, and its logits on fakes up toward
    ``anchor_real``, the average on real images (only where they are past it), which bounds how far D can
    separate the two.  The anchors are constants here (the caller keeps them: moving averages over steps).
    """
    real, fake = _flat(real_logits), _flat(fake_logits)
    anchor_real, anchor_fake = tf.cast(anchor_real, tf.float32), tf.cast(anchor_fake, tf.float32)
    return weight * (tf.square(tf.nn.relu(real - anchor_fake)) + tf.square(tf.nn.relu(anchor_real - fake)))


LOSSES: Dict[str, LossFn] = {
    "nonsaturating": nonsaturating,
    "hinge": hinge,
    "least_squares": least_squares,
    "wasserstein": wasserstein,
}


def get_loss(name: str) -> LossFn:
    """Look up a loss by name; unknown names raise ``ValueError`` listing the valid ones."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
