"""The one train step, generated from a GAN variant's composition (:mod:`gan_anime.variants`).

``TrainStep(...)(step)`` gives the compiled ``tf.function`` for global step ``step``; calling it
with one batch from :func:`gan_anime.data.pipeline.make_dataset` runs ``strategy.run`` of the replica
step, sums the replicas' statistics, updates the averaged generator and advances the step counters.
Nothing here asks which variant it is: the parts are looked up in the registries below
(adversarial losses in :data:`gan_anime.losses.LOSSES`, :data:`PENALTIES`, :data:`HEAD_LOSSES`,
:data:`STATS`), and the update pattern follows ``cfg.n_critic``:

* ``n_critic == 1``: one forward pass of G and D on one batch, and both networks' gradients from
  it (DCGAN's simultaneous update; D and G see the same D);
* ``n_critic == k > 1``: k discriminator updates, each on a batch of its own (real images, noise,
  and its own DiffAugment and interpolation draws), then one generator update on fresh noise
  (``g_noise``) through the updated D, as in WGAN-GP's Algorithm 1.

Every per-example quantity is averaged over the *global* batch (``tf.nn.compute_average_loss``)
and the replicas' values are summed, so one device and N replicas compute the same step (top-k
training, ``cfg.top_k`` < 1, is the exception: each replica keeps the best-scored fakes of its own share).  The step
also reports the global norms of both networks' gradients (``d_grad_norm``, ``g_grad_norm``), so a
NaN or inf in any gradient reaches the loop's check in the step it appears (on N replicas the
figure is the sum of the replicas' partial-gradient norms, an upper bound of the applied one's).
With several workers the step also sums each worker's stop request (``stop_request``), so every
worker reads the same request back with the same step's statistics.
"""

from __future__ import annotations

from typing import Callable, Dict, FrozenSet, Optional

import keras
import tensorflow as tf

from gan_anime.config import Config
from gan_anime.data.augment import diff_augment
from gan_anime.losses import (generator_loss, get_loss, gradient_penalty, lecam_penalty, r1_penalty, top_k_fraction,
                              top_k_weights)
from gan_anime.training.multiworker import STOP_KEY
from gan_anime.variants import Variant

Outputs = Dict[str, tf.Tensor]   # D's outputs: "logits" [B], and "hair" [B, H], "eye" [B, E] with classifier heads


def outputs(d_result) -> Outputs:
    """A discriminator's result as a dict: plain logits [B] become {"logits": logits}."""
    return d_result if isinstance(d_result, dict) else {"logits": d_result}


# ------------------------------------------------------------------------------- parts by name
def _class_loss(out: Outputs, labels) -> tf.Tensor:
    """Hair plus eye cross-entropy of classifier heads, per example [B]."""
    hair, eye = labels
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits
    return ce(labels=hair, logits=tf.cast(out["hair"], tf.float32)) + ce(labels=eye, logits=tf.cast(out["eye"], tf.float32))


def _no_head_loss(out: Outputs, labels):
    return None


#: Auxiliary loss of the discriminator heads, per example [B] or None: D's loss on its outputs for the real
#: images and G's loss on its outputs for the fakes.  ACGAN's classifier is trained on *real* images only and G is trained to
#: make its fakes classified as their labels.  Odena et al. also train D to classify fakes; that
#: rewards D for recognising G's class-specific artefacts and lets G satisfy the classifier with
#: easy-to-classify but unrealistic images, a known ACGAN weakness (Shu 2017, Gong et al. 2019 "Twin
#: Auxiliary Classifiers GAN").  Trained on real faces only, the head is a tag classifier of real
#: images, which is also what gan_anime's tag accuracy measures.
HEAD_LOSSES: Dict[str, Callable] = {"projection": _no_head_loss, "classifier": _class_loss}


def _probability(real: Outputs, fake: Outputs):
    return {"d_real": tf.sigmoid(real["logits"]), "d_fake": tf.sigmoid(fake["logits"])}


def _score(real: Outputs, fake: Outputs):
    return {"real_score": real["logits"], "fake_score": fake["logits"]}


def _wasserstein(real: Outputs, fake: Outputs):
    # Mean over the batch of critic(real) - critic(fake): the critic's estimate of the Wasserstein distance.
    return {"w_distance": real["logits"] - fake["logits"]}


#: What a variant reports about D's outputs, per example [B] (averaged over the global batch).
STATS: Dict[str, Callable[[Outputs, Outputs], Dict[str, tf.Tensor]]] = {
    "probability": _probability,   # D(x), D(G(z)) as probabilities: non-saturating / least-squares D
    "score": _score,               # raw scores: hinge
    "wasserstein": _wasserstein,   # a critic's scores mean nothing alone, only their difference
}

#: D penalties: name -> (Config field with its weight, interval field or None for every step).
PENALTIES: Dict[str, tuple] = {
    "r1": ("r1_gamma", "r1_every"),   # lazy R1 (StyleGAN2): every r1_every steps, weight gamma * r1_every
    "gp": ("gp_weight", None),        # WGAN-GP: every critic update
}


def active_penalties(variant: Variant, cfg: Config, step: int) -> FrozenSet[str]:
    """The variant's penalties that apply at global step ``step`` (weight > 0 and on their interval)."""
    active = set()
    for name in variant.penalties:
        weight_field, every_field = PENALTIES[name]
        if getattr(cfg, weight_field) > 0 and (every_field is None or step % getattr(cfg, every_field) == 0):
            active.add(name)
    return frozenset(active)


# ------------------------------------------------------------------------------- loss scaling
#: float16 only: a loss scale that still overflows at or below this is not an overflow but a non-finite
#: gradient; the step reports a NaN gradient norm, so the loop's guard rolls the run back.
MIN_LOSS_SCALE = 1.0


def scaled_loss(optimizer, loss: tf.Tensor) -> tf.Tensor:
    """``loss`` times the optimizer's loss scale (float16, :class:`keras.optimizers.LossScaleOptimizer`),
    so small float16 gradients do not flush to zero; the loss itself elsewhere."""
    return optimizer.scale_loss(loss) if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else loss


def apply_gradients(optimizer, grads, variables) -> tf.Tensor:
    """Apply ``grads`` (of :func:`scaled_loss`) in a replica context; returns their global norm.

    With loss scaling the optimizer unscales them and, when any is not finite, skips the update and
    halves its scale (doubling it after 2,000 good steps).  Every replica skips together: one replica's
    overflow makes all replicas' gradients non-finite before the optimizer sees them.  A skipped step
    reports a norm of 0, so an overflow does not trip the loop's NaN guard; once the scale is at
    :data:`MIN_LOSS_SCALE` it reports NaN, since the gradients are then non-finite, not too large.
    """
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer.apply_gradients(zip(grads, variables))
        return tf.linalg.global_norm(grads)
    bad = tf.cast(tf.logical_not(optimizer.check_finite(grads)), tf.float32)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, bad)
        poison = tf.where(bad > 0, float("nan"), 0.0)
        grads = [None if g is None else g + tf.cast(poison, g.dtype) for g in grads]
    scale = tf.convert_to_tensor(optimizer.dynamic_scale)   # before apply() changes it
    optimizer.apply(grads, variables)
    norm = tf.linalg.global_norm(grads) / scale
    skipped = tf.where(scale > MIN_LOSS_SCALE, 0.0, float("nan"))
    return tf.where(bad > 0, skipped, norm)


def lecam_update(anchors, real_mean, fake_mean, decay: float) -> tf.Tensor:
    """The LeCam anchors [real, fake, updates] after one step whose mean logits are ``real_mean``, ``fake_mean``.

    A moving average with the EMA generator's warm-up, decay min(``decay``, (1 + n) / (10 + n)) after n updates,
    so the first steps' anchors follow D's logits closely instead of starting from zero.
    """
    n = anchors[2]
    d = tf.minimum(tf.constant(decay, tf.float32), (1.0 + n) / (10.0 + n))
    means = tf.stack([tf.cast(real_mean, tf.float32), tf.cast(fake_mean, tf.float32)])
    return tf.concat([d * anchors[:2] + (1.0 - d) * means, [n + 1.0]], axis=0)


# ------------------------------------------------------------------------------- the step
class TrainStep:
    """Builds and caches the compiled step for each set of active penalties.

    G, D, optimizers, strategy: the trainer's (built under ``strategy.scope()``).
    after_step: called inside the compiled step after the replicas' updates (EMA, counters).
    stop_request: several workers only, this worker's host variable of stop reasons
    (:class:`gan_anime.training.multiworker.StopRequest`); the step returns its sum over all replicas
    under ``STOP_KEY``.  None (one process): the step is unchanged.
    epochs_done: the run's counter of completed epochs, read by top-k training (``cfg.top_k`` < 1) for the
    fraction of fakes G learns from; unused otherwise.
    lecam_anchors: with the LeCam regulariser (``cfg.lecam`` > 0), the run's float32 [3] variable (D's mean logit on
    real images, on fakes, and how many steps have updated them), made under the strategy's scope; the step
    reads the anchors in D's loss and then moves them toward the step's global means.
    """

    def __init__(self, cfg: Config, variant: Variant, G, D, g_opt, d_opt, strategy: tf.distribute.Strategy,
                 after_step: Callable[[], None], stop_request: Optional[tf.Variable] = None,
                 epochs_done: Optional[tf.Variable] = None, lecam_anchors: Optional[tf.Variable] = None):
        self.cfg, self.variant, self.G, self.D = cfg, variant, G, D
        self.g_opt, self.d_opt, self.strategy, self.after_step = g_opt, d_opt, strategy, after_step
        self.stop_request = stop_request
        if cfg.top_k < 1.0 and epochs_done is None:
            raise ValueError("top_k < 1 needs the run's epoch counter (TrainStep(epochs_done=...))")
        self.epochs_done = epochs_done if cfg.top_k < 1.0 else None
        if cfg.lecam > 0 and lecam_anchors is None:
            raise ValueError("lecam > 0 needs the run's anchors variable (TrainStep(lecam_anchors=...))")
        self.lecam_anchors = lecam_anchors if cfg.lecam > 0 else None
        self.loss_fn = get_loss(cfg.loss)
        self.head_loss = HEAD_LOSSES[variant.heads]
        self.stats_fn = STATS[variant.stats]
        self._compiled: Dict[FrozenSet[str], Callable] = {}

    def __call__(self, step: int) -> Callable:
        """The compiled step function for global step ``step`` (a step that applies R1 differs)."""
        active = active_penalties(self.variant, self.cfg, step)
        if active not in self._compiled:
            self._compiled[active] = self._build(active)
        return self._compiled[active]

    # -------------------------------------------------------------------------- helpers
    def _avg(self, x):
        return tf.nn.compute_average_loss(x, global_batch_size=self.cfg.batch_size)

    def _labels(self, batch):
        return (batch["hair"], batch["eye"]) if self.cfg.conditional else None

    def _augment(self, images, batch, role: int):
        """DiffAugment (when configured) with draws fixed by (run seed, batch position, role, replica)."""
        if not self.cfg.diffaugment:
            return images
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        key = tf.stack([tf.constant(self.cfg.seed, tf.int64), tf.cast(batch["position"], tf.int64)])
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(replica, tf.int32) * 4 + role)
        return diff_augment(images, self.cfg.diffaugment, key)

    def _d_terms(self, batch, fake, active):
        """D's forward passes on a real batch and on ``fake``: (d_each [B], G's adversarial loss g_adv [B],
        D's outputs on the fakes, logs {name: per-example [B]}).

        Real images first, then fake ones, through D separately, so D's batch norm (DCGAN) never mixes
        them ("ganhacks" #4).  Penalties are added per example to D's loss.
        """
        cfg, D, labels = self.cfg, self.D, self._labels(batch)
        real = self._augment(batch["images"], batch, 0)
        if "r1" in active:
            with tf.GradientTape() as r1_tape:   # inside the caller's tape: D's update sees the penalty's gradient
                r1_tape.watch(real)
                real_out = outputs(D(real, labels, training=True))
            real_grads = r1_tape.gradient(real_out["logits"], real)   # of the summed logits: per example
        else:
            real_out = outputs(D(real, labels, training=True))
        fake_in = self._augment(fake, batch, 1)
        fake_out = outputs(D(fake_in, labels, training=True))
        d_each, g_adv = self.loss_fn(real_out["logits"], fake_out["logits"], label_smoothing=cfg.label_smoothing)
        logs = {}
        if "r1" in active:
            r1 = r1_penalty(real_grads, cfg.r1_gamma * cfg.r1_every)
            d_each, logs["r1"] = d_each + r1, r1
        if "gp" in active:
            gp = gradient_penalty(lambda x: outputs(D(x, labels, training=True))["logits"], real, fake_in,
                                  batch["alpha"], cfg.gp_weight)
            d_each, logs["gp"] = d_each + gp, gp
        head = self.head_loss(real_out, labels)
        if head is not None:
            d_each, logs["cls_real"] = d_each + cfg.aux_weight * head, head
        if self.lecam_anchors is not None:
            anchors = tf.identity(self.lecam_anchors)
            lecam = lecam_penalty(real_out["logits"], fake_out["logits"], anchors[0], anchors[1], cfg.lecam)
            d_each, logs["lecam"] = d_each + lecam, lecam
            # Per example, so the reduced statistics are the global batch's mean logits (the anchors' update).
            logs["real_logit"] = tf.reshape(tf.cast(real_out["logits"], tf.float32), [-1])
            logs["fake_logit"] = tf.reshape(tf.cast(fake_out["logits"], tf.float32), [-1])
        logs.update(self.stats_fn(real_out, fake_out))
        return d_each, g_adv, fake_out, logs

    def _g_each(self, g_each, fake_out, labels, logs, keep):
        """G's per-example loss [B]: its adversarial loss (only the fakes top-k training keeps, when ``keep``,
        the kept fraction, is given) plus the heads' loss on the fakes."""
        if keep is not None:
            g_each = g_each * top_k_weights(fake_out["logits"], keep)
        head = self.head_loss(fake_out, labels)
        if head is not None:
            g_each, logs["cls_fake"] = g_each + self.cfg.aux_weight * head, head
        return g_each

    # -------------------------------------------------------------------------- update patterns
    def _simultaneous(self, batch, active, keep=None):
        """One batch: G and D forward once, both networks' gradients from the same pass."""
        G, D, labels = self.G, self.D, self._labels(batch)
        with tf.GradientTape(persistent=True) as tape:
            fake = G(batch["noise"], labels, training=True)
            d_each, g_adv, fake_out, logs = self._d_terms(batch, fake, active)
            g_each = self._g_each(g_adv, fake_out, labels, logs, keep)
            d_loss, g_loss = self._avg(d_each), self._avg(g_each)
            d_target, g_target = scaled_loss(self.d_opt, d_loss), scaled_loss(self.g_opt, g_loss)
        d_grads = tape.gradient(d_target, D.trainable_variables)
        g_grads = tape.gradient(g_target, G.trainable_variables)
        del tape
        d_norm = apply_gradients(self.d_opt, d_grads, D.trainable_variables)
        g_norm = apply_gradients(self.g_opt, g_grads, G.trainable_variables)
        return {"d_loss": d_loss, "g_loss": g_loss, **{k: self._avg(v) for k, v in logs.items()},
                "d_grad_norm": d_norm, "g_grad_norm": g_norm}

    def _critic_then_generator(self, batch, active, keep=None):
        """n_critic D updates (batch j of the step each), then one G update on ``g_noise``."""
        G, D, k = self.G, self.D, self.cfg.n_critic
        sums: Dict[str, tf.Tensor] = {}
        for j in range(k):
            part = {key: v[j] for key, v in batch.items() if key != "g_noise"}
            fake = G(part["noise"], self._labels(part), training=True)   # no G gradient in a critic update
            with tf.GradientTape() as tape:
                d_each, _, _, logs = self._d_terms(part, fake, active)
                d_loss = self._avg(d_each)
                d_target = scaled_loss(self.d_opt, d_loss)
            d_norm = apply_gradients(self.d_opt, tape.gradient(d_target, D.trainable_variables), D.trainable_variables)
            for key, v in {"d_loss": d_loss, **{n: self._avg(x) for n, x in logs.items()},
                           "d_grad_norm": d_norm}.items():
                sums[key] = sums[key] + v if key in sums else v
        # The generator update: labels of the step's last batch (``part``), noise of its own, through the updated D.
        last = part
        labels = self._labels(last)
        logs = {}
        with tf.GradientTape() as tape:
            fake = G(batch["g_noise"], labels, training=True)
            fake_out = outputs(D(self._augment(fake, last, 2), labels, training=True))
            g_each = self._g_each(generator_loss(self.loss_fn, fake_out["logits"]), fake_out, labels, logs, keep)
            g_loss = self._avg(g_each)
            g_target = scaled_loss(self.g_opt, g_loss)
        g_norm = apply_gradients(self.g_opt, tape.gradient(g_target, G.trainable_variables), G.trainable_variables)
        # D's statistics: the mean over the step's critic updates.
        return {**{key: v / k for key, v in sums.items()}, "g_loss": g_loss,
                **{n: self._avg(x) for n, x in logs.items()}, "g_grad_norm": g_norm}

    def _build(self, active: FrozenSet[str]):
        pattern = self._simultaneous if self.cfg.n_critic == 1 else self._critic_then_generator

        def replica_step(batch, keep):
            return pattern(batch, active, keep)

        if self.cfg.jit_compile:
            replica_step = tf.function(replica_step, jit_compile=True)
        if self.stop_request is not None:
            compute, request = replica_step, self.stop_request

            def replica_step(batch, keep):   # outside any XLA cluster: the request is a host variable
                return {**compute(batch, keep), STOP_KEY: tf.identity(request)}
        strategy, cfg, epochs_done, anchors = self.strategy, self.cfg, self.epochs_done, self.lecam_anchors

        @tf.function
        def step(batch):
            # Top-k training's kept fraction, from the host's epoch counter, handed to every replica.
            keep = None if epochs_done is None else top_k_fraction(cfg.top_k, cfg.top_k_decay, epochs_done)
            per_replica = strategy.run(replica_step, args=(batch, keep))
            stats = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
            if anchors is not None:
                anchors.assign(lecam_update(anchors, stats["real_logit"], stats["fake_logit"], cfg.lecam_decay))
            self.after_step()
            return stats

        return step
