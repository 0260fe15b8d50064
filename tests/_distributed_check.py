"""Run by test_distributed.py in a fresh process: the CPU must be split into two logical
devices before TensorFlow initialises, which a shared pytest process cannot guarantee."""

import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tf.config.experimental.enable_op_determinism()

from gan_anime.config import Config  # noqa: E402
from gan_anime.data.folder import ImageSet  # noqa: E402
from gan_anime.training.trainer import Trainer  # noqa: E402


def main(run_root: str, conditional: bool) -> None:
    rng = np.random.default_rng(0)
    n = 48
    data = ImageSet(images=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
                    hair=rng.integers(0, 3, n).astype(np.int32) if conditional else None,
                    eye=rng.integers(0, 2, n).astype(np.int32) if conditional else None)
    extra = dict(conditional=True, num_hair=3, num_eye=2, hair_classes=("a", "b", "c"),
                 eye_classes=("x", "y")) if conditional else dict(conditional=False)
    # The conditional run has the default D (no norm, lazy R1, step 0 an R1 step); the other the DCGAN
    # D with synchronized batch norm and no penalty: both paths must match one device.
    if not conditional:
        extra.update(d_norm="batch", r1_gamma=0.0)
    base = Config(image_size=16, g_width=8, d_width=8, noise_dim=8, batch_size=16, epochs=2,
                  max_steps=4, checkpoint_every=0, mbstd_group=4, **extra)
    one = Trainer(base.replace(run_dir=f"{run_root}/one"), tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = Trainer(base.replace(run_dir=f"{run_root}/two"), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    assert two.replicas == 2, two.replicas
    # Same starting point, whatever each strategy's initialisers did.
    for net in ("G", "D", "G_ema"):
        for dst, src in zip(getattr(two, net).weights, getattr(one, net).weights):
            dst.assign(src.numpy())
    before = [w.numpy().copy() for w in one.G.trainable_weights]
    r1 = one.fit(data)
    r2 = two.fit(data)
    assert r1.step == r2.step == 4, (r1.step, r2.step)
    changed = max(float(np.abs(a - w.numpy()).max()) for a, w in zip(before, one.G.trainable_weights))
    assert changed > 1e-4, f"generator did not train (max change {changed})"
    worst = 0.0
    for net in ("G", "D", "G_ema"):
        for a, b in zip(getattr(one, net).weights, getattr(two, net).weights):
            diff = float(np.abs(a.numpy() - b.numpy()).max())
            worst = max(worst, diff)
            assert diff < 1e-5, f"{net} {a.path}: one device vs two replicas differ by {diff}"
    for k in ("d_loss", "g_loss"):
        assert abs(r1.last[k] - r2.last[k]) < 1e-5, (k, r1.last[k], r2.last[k])
    print(f"OK max weight difference {worst:.2e}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "1")
