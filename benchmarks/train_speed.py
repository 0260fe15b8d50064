"""Training-step throughput (images/s) of the real trainer on random data.

    python benchmarks/train_speed.py [--gan dcgan ...] [--image-size 64] [--width 32] [--batch-size 32]
                                     [--steps 60] [--xla]

Times the real ``Trainer`` step (tf.data pipeline, strategy.run, both optimizers,
EMA) after a warm-up that absorbs tracing, and prints one line per setting.  Images/s counts
training images consumed: a step of a variant with n critic updates takes n batches, so the rate
compares epochs (passes over the data) across variants.  Conditional variants (acgan) get random tags.
Not a test: numbers depend on the machine (see README, "Measured").
"""

import argparse
import tempfile
import time

import numpy as np


def measure(image_size: int, width: int, batch: int, steps: int, xla: bool, warmup: int = 5,
            gan: str = "dcgan") -> float:
    from gan_anime.config import Config
    from gan_anime.data.folder import ImageSet
    from gan_anime.training.hooks import Hook
    from gan_anime.training.trainer import Trainer

    class Clock(Hook):
        """The time the last checkpoint was written: the steps and the stop's checkpoint are timed, the
        reports drawn after it (loss.png, ~0.2 s) are not, as before the trainer drew them."""
        def checkpoint(self, path):
            self.saved = time.perf_counter()

    from gan_anime.variants import get_variant
    rng = np.random.default_rng(0)
    tags = get_variant(gan).needs_tags
    k = Config.for_gan(gan).n_critic
    n = batch * k * (steps + warmup + 1)
    data = ImageSet(images=rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8),
                    hair=rng.integers(0, 12, n).astype(np.int32) if tags else None,
                    eye=rng.integers(0, 10, n).astype(np.int32) if tags else None)
    classes = dict(conditional=True, num_hair=12, num_eye=10, hair_classes=tuple(map(str, range(12))),
                   eye_classes=tuple(map(str, range(10)))) if tags else dict(conditional=False)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config.for_gan(gan, image_size=image_size, g_width=width, d_width=width, batch_size=batch,
                             jit_compile=xla, run_dir=tmp, checkpoint_every=0, max_steps=warmup, epochs=1, **classes)
        trainer = Trainer(cfg)
        trainer.fit(data)                                   # tracing + warm-up steps
        trainer.cfg = cfg.replace(max_steps=warmup + steps)
        clock = Clock()
        start = time.perf_counter()
        result = trainer.fit(data, hooks=[clock])
        elapsed = clock.saved - start
    return (result.step - warmup) * batch * k / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gan", nargs="+", default=["dcgan"])
    p.add_argument("--image-size", type=int, nargs="+", default=[64])
    p.add_argument("--width", type=int, nargs="+", default=[32])
    p.add_argument("--batch-size", type=int, nargs="+", default=[32])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--xla", action="store_true")
    args = p.parse_args()
    for gan in args.gan:
        for size in args.image_size:
            for width in args.width:
                for batch in args.batch_size:
                    rate = measure(size, width, batch, args.steps, args.xla, gan=gan)
                    print(f"{gan}  image {size}px  width {width}  batch {batch}  xla {args.xla}: {rate:.1f} "
                          f"images/s", flush=True)


if __name__ == "__main__":
    main()
