"""Run by test_distributed.py in a fresh process: the CPU must be split into two logical
devices before TensorFlow initialises, which a shared pytest process cannot guarantee.

usage: _distributed_check.py RUN_ROOT VARIANT, VARIANT one of the cases in CASES.
With plain SGD, one device and two replicas must end with the same weights: SGD's update is
proportional to the gradient, so a wrong loss scale across replicas shows (Adam alone would not
show it: it is nearly invariant to a uniform scale of the gradient).  The default variant also runs
with Adam, the default optimizer, whose slot variables the replicas must keep in step; the other
variants share its optimizer code, so their Adam runs would repeat that check (and cost a third of
the suite's distribution time).
"""

import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tf.config.experimental.enable_op_determinism()

import keras  # noqa: E402

from gan_anime.config import Config  # noqa: E402
from gan_anime.data.folder import ImageSet  # noqa: E402
from gan_anime.training.trainer import Trainer  # noqa: E402

TAGS = dict(conditional=True, num_hair=3, num_eye=2, hair_classes=("a", "b", "c"), eye_classes=("x", "y"))
#: name -> (gan, Config fields).  "dcgan" has the default D (no norm, lazy R1, step 0 an R1 step); "dcgan-bn"
#: the DCGAN D with synchronized batch norm and no penalty; wgan-gp runs 2 critic updates per step; hinge
#: adds the LeCam regulariser, whose anchors are the global batch's mean logits (the replicas' sum).
CASES = {
    "dcgan": ("dcgan", TAGS),
    "dcgan-bn": ("dcgan", dict(conditional=False, d_norm="batch", r1_gamma=0.0)),
    "acgan": ("acgan", TAGS),
    "wgan-gp": ("wgan-gp", dict(TAGS, n_critic=2)),
    "hinge": ("hinge", dict(conditional=False, diffaugment="", lecam=0.3)),
}

#: SGD learning rates where the default 2.0 does not fit.  wgan-gp: the critic diverges at 2.0 (and G barely
#: moves at 0.05).  dcgan-bn: at 2.0 batch norm amplifies float round-off between the two reduction orders
#: to 9e-5 in 4 steps; at 0.5 it is 6e-7 (a wrong scale would differ by about the change itself, > 1e-4).
SGD_RATES = {"wgan-gp": 0.5, "dcgan-bn": 0.5}
#: The cases that also run with Adam (see the module docstring).
ADAM_CASES = ("dcgan",)


def use_sgd(trainer: Trainer, lr: float = 2.0) -> None:
    """Swap both optimizers for plain SGD (built under the trainer's strategy, like its Adams)."""
    with trainer.strategy.scope():
        for net, attr in ((trainer.G, "g_opt"), (trainer.D, "d_opt")):
            opt = keras.optimizers.SGD(lr)
            opt.build(net.trainable_variables)
            setattr(trainer, attr, opt)
            setattr(trainer.train_step, attr, opt)


def main(run_root: str, case: str) -> None:
    gan, fields = CASES[case]
    rng = np.random.default_rng(0)
    n = 64
    tagged = fields.get("conditional", False)
    data = ImageSet(images=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
                    hair=rng.integers(0, 3, n).astype(np.int32) if tagged else None,
                    eye=rng.integers(0, 2, n).astype(np.int32) if tagged else None)
    # float32: bfloat16 rounds differently when a batch is split in two (4e-4 apart after 4 steps here), and
    # this check is about the distribution arithmetic (loss scale, gradient sums), not about the precision.
    base = Config.for_gan(gan, image_size=16, g_width=8, d_width=8, noise_dim=8, batch_size=16, epochs=2,
                          max_steps=4 if gan != "wgan-gp" else 2, checkpoint_every=0, precision="float32",
                          **fields)
    worst = 0.0
    for optimizer in ("adam", "sgd") if case in ADAM_CASES else ("sgd",):
        one = Trainer(base.replace(run_dir=f"{run_root}/{optimizer}-one"), tf.distribute.OneDeviceStrategy("/cpu:0"))
        two = Trainer(base.replace(run_dir=f"{run_root}/{optimizer}-two"),
                      tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
        assert two.replicas == 2, two.replicas
        if optimizer == "sgd":
            use_sgd(one, SGD_RATES.get(case, 2.0))
            use_sgd(two, SGD_RATES.get(case, 2.0))
        # Same starting point, whatever each strategy's initialisers did.
        for net in ("G", "D", "G_ema"):
            for dst, src in zip(getattr(two, net).weights, getattr(one, net).weights):
                dst.assign(src.numpy())
        before = [w.numpy().copy() for w in one.G.trainable_weights]
        r1 = one.fit(data, progress="lines")
        r2 = two.fit(data, progress="lines")
        assert r1.step == r2.step == base.max_steps, (r1.step, r2.step)
        assert int(one.d_opt.iterations) == base.max_steps * base.n_critic, int(one.d_opt.iterations)
        changed = max(float(np.abs(a - w.numpy()).max()) for a, w in zip(before, one.G.trainable_weights))
        # Ten times the 1e-5 tolerance below, so a wrong gradient scale across replicas shows with SGD.
        assert changed > 1e-4, f"{optimizer}: generator did not train (max change {changed})"
        for net in ("G", "D", "G_ema"):
            for a, b in zip(getattr(one, net).weights, getattr(two, net).weights):
                diff = float(np.abs(a.numpy() - b.numpy()).max())
                worst = max(worst, diff)
                assert diff < 1e-5, f"{case} {optimizer} {net} {a.path}: one device vs two replicas differ by {diff}"
        if one.lecam_anchors is not None:
            a, b = one.lecam_anchors.numpy(), two.lecam_anchors.numpy()
            assert a[2] == b[2] == base.max_steps and np.abs(a[:2]).min() > 1e-3, (a, b)
            assert np.abs(a - b).max() < 1e-5, f"{case} {optimizer} LeCam anchors: {a} vs {b}"
        for k in r1.last:
            # Gradient norms on N replicas are the sum of the replicas' partial norms (see step.py), by design.
            if k not in ("images_per_s", "d_grad_norm", "g_grad_norm"):
                assert abs(r1.last[k] - r2.last[k]) < 1e-5 * max(1.0, abs(r1.last[k])), (k, r1.last[k], r2.last[k])
    print(f"OK max weight difference {worst:.2e}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
