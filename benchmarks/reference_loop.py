"""The plain TensorFlow loop gan_anime's trainer is measured against (the DCGAN tutorial's loop).

    python benchmarks/reference_loop.py [--arch gan_anime|tutorial] [--image-size 64] [--width 32]
                                        [--batch-size 16] [--steps 40] [--onednn default|on|off]

Prints one JSON line: images/s of the loop of TensorFlow's DCGAN tutorial
(tensorflow.org/tutorials/generative/dcgan): a ``tf.data`` pipeline of ``from_tensor_slices`` +
``shuffle`` + ``batch``, noise from ``tf.random.normal`` inside one ``tf.function`` with two
``GradientTape``s, binary cross-entropy losses, two Adam optimizers, nothing else (no EMA, no
penalty, no checkpoint, no log).  ``--arch``:

* ``gan_anime``: gan_anime's own generator and discriminator at the given size and width (the same
  networks as ``ENTRY --benchmark``, so the two rates compare loops, not architectures), in float32
  as the tutorial computes;
* ``tutorial``: the tutorial's networks scaled to the image size: G a dense 4x4 seed of 8 x width
  channels and 5x5 stride-2 transposed convs (batch norm, LeakyReLU), D 5x5 stride-2 convs
  (LeakyReLU, dropout 0.3) and a dense logit.

``--onednn``: ``default`` leaves ``TF_ENABLE_ONEDNN_OPTS`` unset (TensorFlow's own choice for this
CPU), ``on``/``off`` set it to 1/0.  It is read when TensorFlow is imported, so each setting runs in
a process of its own: :func:`run` starts one.  Timing: the median of windows of 4 steps, each ended
by reading a loss back, after 8 untimed steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ONEDNN = {"default": None, "on": "1", "off": "0"}
#: TF_ENABLE_ONEDNN_OPTS as this process was started (gan_anime's import sets it when unset).
ENV_AT_START = os.environ.get("TF_ENABLE_ONEDNN_OPTS")


def tutorial_models(image_size: int, width: int, noise_dim: int):
    import tensorflow as tf
    from gan_anime.models.layers import num_blocks
    n = num_blocks(image_size)
    layers = tf.keras.layers
    g = tf.keras.Sequential([layers.Input((noise_dim,)), layers.Dense(4 * 4 * width * 2 ** (n - 1), use_bias=False),
                             layers.BatchNormalization(), layers.LeakyReLU(0.3),
                             layers.Reshape((4, 4, width * 2 ** (n - 1)))], name="generator")
    for i in range(n - 1):
        g.add(layers.Conv2DTranspose(width * 2 ** (n - 2 - i), 5, strides=2, padding="same", use_bias=False))
        g.add(layers.BatchNormalization())
        g.add(layers.LeakyReLU(0.3))
    g.add(layers.Conv2DTranspose(3, 5, strides=2, padding="same", use_bias=False, activation="tanh"))
    d = tf.keras.Sequential([layers.Input((image_size, image_size, 3))], name="discriminator")
    for i in range(n):
        d.add(layers.Conv2D(width * 2 ** i, 5, strides=2, padding="same"))
        d.add(layers.LeakyReLU(0.3))
        d.add(layers.Dropout(0.3))
    d.add(layers.Flatten())
    d.add(layers.Dense(1))
    return g, d


def measure(arch: str, image_size: int, width: int, batch: int, steps: int, warmup: int = 8,
            window: int = 4) -> dict:
    import statistics
    import time

    import numpy as np
    import tensorflow as tf

    noise_dim = 100
    if arch == "tutorial":
        generator, discriminator = tutorial_models(image_size, width, noise_dim)
    else:
        from gan_anime.config import Config
        from gan_anime.models import build_models
        # float32, as the tutorial: not gan_anime's precision "auto", which is bfloat16 on some CPUs.
        generator, discriminator = build_models(Config(image_size=image_size, g_width=width, d_width=width,
                                                       noise_dim=noise_dim, conditional=False, precision="float32"))
        generator(tf.zeros([batch, noise_dim]))
        discriminator(tf.zeros([batch, image_size, image_size, 3]))

    cross_entropy = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    g_opt, d_opt = tf.keras.optimizers.Adam(1e-4), tf.keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([batch, noise_dim])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            disc_loss = (cross_entropy(tf.ones_like(real_output), real_output)
                         + cross_entropy(tf.zeros_like(fake_output), fake_output))
        g_opt.apply_gradients(zip(gen_tape.gradient(gen_loss, generator.trainable_variables),
                                  generator.trainable_variables))
        d_opt.apply_gradients(zip(disc_tape.gradient(disc_loss, discriminator.trainable_variables),
                                  discriminator.trainable_variables))
        return gen_loss

    count = batch * (warmup + steps + window)
    images = np.random.default_rng(0).uniform(-1, 1, (count, image_size, image_size, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(images).shuffle(count).batch(batch, drop_remainder=True)
    it = iter(dataset)
    for _ in range(warmup):
        float(train_step(next(it)))
    times = [time.perf_counter()]
    for i in range(steps):
        loss = train_step(next(it))
        if (i + 1) % window == 0:
            float(loss)
            times.append(time.perf_counter())
    rates = [window * batch / (b - a) for a, b in zip(times, times[1:])]
    from gan_anime.benchmark import graph_flops, onednn_enabled, peak_rss_mb
    flops = graph_flops(train_step.get_concrete_function(next(it))) / batch
    rate = statistics.median(rates)
    return {"benchmark": "reference_loop", "arch": arch, "image_size": image_size, "width": width,
            "batch_size": batch, "steps": steps, "precision": generator.compute_dtype, "onednn": onednn_enabled(),
            "onednn_env": ENV_AT_START,
            "train_images_per_s": round(rate, 2), "train_images_per_s_windows": [round(r, 1) for r in rates],
            "flops_per_image": round(flops), "achieved_gflops": round(flops * rate / 1e9, 2),
            "peak_rss_mb": peak_rss_mb()}


def run(arch: str, image_size: int, width: int, batch: int, steps: int, onednn: str = "default") -> dict:
    """:func:`measure` in a process of its own with ``TF_ENABLE_ONEDNN_OPTS`` set for ``onednn``."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if ONEDNN[onednn] is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = ONEDNN[onednn]
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, os.path.abspath(__file__), "--arch", arch, "--image-size", str(image_size),
           "--width", str(width), "--batch-size", str(batch), "--steps", str(steps), "--onednn", onednn]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"reference loop failed ({' '.join(cmd)}): {out.stderr.strip()[-2000:]}")
    return {**json.loads(lines[-1]), "onednn_setting": onednn}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=("gan_anime", "tutorial"), default="gan_anime")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--onednn", choices=tuple(ONEDNN), default="default",
                   help="the TF_ENABLE_ONEDNN_OPTS this process was started with (set by run())")
    args = p.parse_args()
    # TensorFlow reads TF_ENABLE_ONEDNN_OPTS when it is imported: import it before gan_anime, whose
    # package sets the variable to 1 when it is unset.
    import tensorflow  # noqa: F401
    print(json.dumps(measure(args.arch, args.image_size, args.width, args.batch_size, args.steps)), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
