"""Training speed against the machine's limit: ``ENTRY --benchmark`` and ``benchmarks/train_speed.py``.

:func:`benchmark` trains the real :class:`~gan_anime.training.trainer.Trainer` (its input pipeline,
``strategy.run``, both optimizers, EMA, lazy R1, minibatch-stddev, the per-step host read-back and
log row) on random images and returns one JSON-able dict:

* ``train_images_per_s``: median over windows of timed steps after warm-up (tracing and the
  first steps of every compiled step variant are not timed).  A window holds whole ``r1_every``
  periods (and ``readback_every`` bursts), so each has its R1 steps and the median does not drop
  the slow ones;
* ``pipeline_images_per_s``: the same input pipeline on its own, nothing training;
* ``peak_rss_mb``: the process's peak resident memory (``getrusage``);
* ``flops_per_image``: model FLOPs per training image counted in the traced train-step graphs
  (TensorFlow's cost registry over the ops that run, :func:`graph_flops`), weighted
  by how often each compiled variant runs (R1 steps are 1 in ``r1_every``);
  ``flops_per_image_by_layers`` is the hand count of :func:`layer_flops_per_image`;
* ``achieved_gflops`` = FLOPs per image x images/s, and ``matmul_gflops``: a 2048 x 2048 float32
  matmul measured in the same process, the machine's practical limit; ``mfu`` is their ratio.

Images/s counts training images consumed: a step with n critic updates takes n batches.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

#: Size of the matmul that measures the machine's limit (2 n^3 FLOPs).
MATMUL_N = 2048


def matmul_gflops(n: int = MATMUL_N, repeats: int = 7) -> float:
    """GFLOP/s of an n x n float32 matmul (median of ``repeats`` after one untimed run)."""
    import tensorflow as tf
    a = tf.random.stateless_normal([n, n], seed=[0, 1])
    b = tf.random.stateless_normal([n, n], seed=[0, 2])
    matmul = tf.function(tf.linalg.matmul, autograph=False)
    matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


# ------------------------------------------------------------------------------------------ FLOPs
def forward_flops(cfg) -> Dict[str, float]:
    """Hand count of one example's forward pass, by layer arithmetic on the DCGAN architecture
    (:mod:`gan_anime.models.dcgan`): {"G": FLOPs, "D": FLOPs, "G_first": G's first layer (the dense
    layer on the noise), "D_first": D's first convolution (on the images), "D_products": the products of two
    activations in D's self-attention (part of "D")}, multiply-adds counted as 2.

    Dense: 2 x in x out.  Conv2D: 2 x H_out x W_out x k^2 x C_in x C_out.  A stride-2 transposed
    conv: 2 x H_in x W_in x k^2 x C_in x C_out (each input pixel scatters a k x k x C_out patch).
    Element-wise layers (batch norm, activations, minibatch-stddev) are left out: they are a few
    percent and what :func:`graph_flops` adds on top.  A conditional batch norm (``g_cbn``) of C channels
    counts its two dense layers on the label vectors: 2 x 2 x labels x C; a skip-layer excitation
    (``g_sle``) its two convolutions on the 4x4-pooled features.
    """
    from gan_anime.models.layers import attention_flops, num_blocks
    n, w, s = num_blocks(cfg.image_size), cfg.g_width, cfg.image_size
    labels = cfg.num_hair + cfg.num_eye if cfg.conditional else 0
    c = w * 2 ** (n - 1)
    g = g_first = 2.0 * (cfg.noise_dim + labels) * 16 * c
    res = 4
    out_width = cfg.g_out_width
    if cfg.g_cbn:   # the scale and offset of each batch norm: the seed's, every block's but the last, rgb_bn
        norms = [c] + [c // 2 ** (i + 1) for i in range(n - 1) for _ in range(cfg.g_depth)] + [out_width] * bool(
            out_width)
        g += sum(4.0 * labels * ch for ch in norms)
    if cfg.g_sle:   # each block i >= 1 gated from features[i - 1] (c // 2**(i-1) channels, pooled to 4x4): a 4x4
        # convolution to the block's c // 2**(i+1) channels, then a 1x1 one (the pooling and the products left out)
        g += sum(2.0 * 16 * (c // 2 ** (i - 1)) * (c // 2 ** (i + 1)) + 2.0 * (c // 2 ** (i + 1)) ** 2
                 for i in range(1, n - 1))
    if cfg.g_skip:   # 1x1 convolutions to RGB at 4 px and after each block but the last
        g += sum(2.0 * (4 * 2 ** i) ** 2 * (c // 2 ** i) * 3 for i in range(n))
    for cin, cout in [(c // 2 ** i, c // 2 ** (i + 1)) for i in range(n - 1)] + [(w, out_width or 3)]:
        if cfg.upsample in ("transpose", "blur"):   # the blur's 9 multiply-adds per value are left out
            g += 2.0 * res * res * 16 * cin * cout
        else:   # nearest x2, then a 3x3 conv at the doubled resolution
            g += 2.0 * (2 * res) ** 2 * 9 * cin * cout
        res *= 2
        if res < s:   # g_depth - 1 more 3x3 convolutions at this resolution
            g += (cfg.g_depth - 1) * 2.0 * res * res * 9 * cout * cout
            if res == cfg.attention:
                g += attention_flops(res, cout)
        elif out_width:   # the 3x3 convolution to RGB
            g += 2.0 * res * res * 9 * out_width * 3
    d, dw, d_products = 0.0, cfg.d_width, 0.0
    d_first = 2.0 * (s // 2) ** 2 * (16 + (1 if cfg.d_residual else 0)) * 3 * dw   # + the first shortcut's 1x1
    for i in range(n):
        cin = 3 if i == 0 else dw * 2 ** (i - 1)
        out = s // 2 ** (i + 1)
        d += 2.0 * out * out * (16 + (1 if cfg.d_residual else 0)) * cin * dw * 2 ** i   # d_residual: + a 1x1
        if i < n - 1:   # d_depth - 1 more 3x3 convolutions at this resolution
            d += (cfg.d_depth - 1) * 2.0 * out * out * 9 * (dw * 2 ** i) ** 2
            if out == cfg.attention:
                d += attention_flops(out, dw * 2 ** i)
                d_products += attention_flops(out, dw * 2 ** i, products_only=True)
    feat = dw * 2 ** (n - 1)
    d += 2.0 * 16 * (feat + (1 if cfg.mbstd_group else 0)) * feat + 2.0 * feat
    if cfg.conditional:
        d += 2.0 * feat * (labels if cfg.gan == "acgan" else 1)
    return {"G": g, "D": d, "G_first": g_first, "D_first": d_first, "D_products": d_products}


def layer_flops_per_image(cfg) -> float:
    """Hand count of training FLOPs per image from :func:`forward_flops`, for the update patterns of
    :mod:`gan_anime.training.step`.  A backward pass costs twice its forward pass (gradients of the
    inputs and of the weights), less the input gradient of a first layer where nothing needs it
    (G's noise, D's images when only D's weights are wanted).  With F_G, F_D the forward counts and
    f_G, f_D their first layers:

    * n_critic = 1 (G and D from one pass): G forward + backward 3 F_G - f_G; D forward on the real
      and the fake batch 2 F_D, D's backward on both 4 F_D - 2 f_D, G's loss back through D to the images
      F_D (input gradients only): 3 F_G - f_G + 7 F_D - 2 f_D.  A product of two activations (P_D, in D's
      self-attention) has no weights, so an input-gradient pass through it costs twice its forward: + P_D
      for each such pass.  A lazy R1 step adds D's input gradient
      on the real batch (F_D) and its own backward (2 F_D): + 3 F_D (+ P_D) once every ``r1_every`` steps;
    * n_critic = k: each critic update F_G + 6 F_D - 2 f_D (+ a gradient penalty: D on the
      interpolates F_D, its input gradient F_D and the backward of both 4 F_D: 6 F_D, and about 2 P_D more
      for the products' input gradient and its backward), then the
      generator update 3 F_G - f_G + 2 F_D, over k batches.
    """
    f = forward_flops(cfg)
    fg, fd, g1, d1, p = f["G"], f["D"], f["G_first"], f["D_first"], f["D_products"]
    generator_update = 3 * fg - g1
    if cfg.n_critic == 1:
        r1 = (3 * fd + p) / cfg.r1_every if cfg.r1_gamma > 0 else 0.0
        return generator_update + 7 * fd + p - 2 * d1 + r1
    k = cfg.n_critic
    gp = 6 * fd + 2 * p if cfg.gp_weight > 0 and cfg.gan == "wgan-gp" else 0.0
    return (k * (fg + 6 * fd - 2 * d1 + gp) + generator_update + 2 * fd + p) / k


#: The op types that carry a network's arithmetic: convolutions, their gradients, matmuls.
HEAVY_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "BatchMatMulV2")


def graph_flops(concrete_function, op_types=None) -> float:
    """Floating-point operations of one call of a traced ``tf.function``: the sum of TensorFlow's
    registered FLOP counts (convolutions and their gradients, matmuls, element-wise arithmetic) over
    the ops that run.

    Only live ops count: those a stateful op (a variable update) or an output depends on.  The
    traced graph also holds gradients nobody asked for (the gradient of a convolution is built for
    its input and its filter together) that Grappler prunes before running; counting them would add
    ~30% to a DCGAN step.  Functions called from the graph (``jit_compile``) are not entered: count
    a step traced without XLA.  ``op_types``: count only ops of these types (e.g. :data:`HEAVY_OPS`).
    """
    from tensorflow.python.framework import ops
    graph = concrete_function.graph
    live, stack = set(), [op for op in graph.get_operations() if op._is_stateful] + [t.op for t in graph.outputs]
    while stack:
        op = stack.pop()
        if op.name not in live:
            live.add(op.name)
            stack += [t.op for t in op.inputs] + list(op.control_inputs)
    total = 0
    for op in graph.get_operations():
        if op.name in live and (op_types is None or op.type in op_types):
            try:
                total += ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0
            except (ValueError, LookupError):   # no FLOP count registered, or shapes unknown
                pass
    return float(total)


def step_flops_per_image(trainer, batch, steps: range) -> float:
    """FLOPs per training image over ``steps``: each compiled step variant (e.g. with and without
    R1) counted from its graph, weighted by how many of ``steps`` use it."""
    cfg, per_variant, total = trainer.cfg, {}, 0.0
    for s in steps:
        fn = trainer.train_step(s)
        if fn not in per_variant:
            per_variant[fn] = graph_flops(fn.get_concrete_function(batch))
        total += per_variant[fn]
    return total / len(steps) / (cfg.batch_size * cfg.n_critic)


# ------------------------------------------------------------------------------------------ timing
def window_rates(times: List[float], window: int, images_per_step: int) -> List[float]:
    """Images/s of consecutive windows of ``window`` steps, from the end time of each step."""
    return [window * images_per_step / (times[i + window] - times[i])
            for i in range(0, len(times) - window, window)]


def pipeline_images_per_s(trainer, data, batches: int) -> float:
    """The trainer's input pipeline alone: images/s of ``batches`` elements after 3 untimed ones."""
    it = trainer._batches(data, start=0, end=batches + 3)
    for _ in range(3):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        element = next(it)
    float(element["position"])   # the last element is really there
    elapsed = time.perf_counter() - start
    return batches * trainer.cfg.batch_size * trainer.cfg.n_critic / elapsed


def random_images(cfg, count: int, seed: int = 0):
    """An :class:`~gan_anime.data.folder.ImageSet` of ``count`` random images (random tags when
    ``cfg`` is conditional), the size of ``cfg``'s."""
    from gan_anime.data.folder import ImageSet
    rng = np.random.default_rng(seed)
    s = cfg.image_size
    tags = dict(hair=rng.integers(0, cfg.num_hair, count).astype(np.int32),
                eye=rng.integers(0, cfg.num_eye, count).astype(np.int32)) if cfg.conditional else {}
    return ImageSet(images=rng.integers(0, 256, (count, s, s, 3), dtype=np.uint8), **tags)


def benchmark_config(gan: str = "dcgan", image_size: int = 64, width: Optional[int] = None,
                     batch_size: Optional[int] = None, **fields):
    """The config :func:`benchmark` trains: ``Config.for_gan(gan)`` with the given sizes (width sets
    both networks'), conditional with 12 hair and 10 eye classes when the variant needs tags."""
    from gan_anime.config import Config
    from gan_anime.variants import get_variant
    base = Config.for_gan(gan)
    sizes = dict(image_size=image_size, g_width=width or base.g_width, d_width=width or base.d_width,
                 batch_size=batch_size or base.batch_size)
    classes = dict(conditional=False)
    if get_variant(gan).needs_tags or fields.get("g_cbn"):   # conditional batch norm needs labels too
        classes = dict(conditional=True, num_hair=12, num_eye=10, hair_classes=tuple(map(str, range(12))),
                       eye_classes=tuple(map(str, range(10))))
    return Config.for_gan(gan, **{**sizes, **classes, "checkpoint_every": 0, **fields})


def benchmark(gan: str = "dcgan", image_size: int = 64, width: Optional[int] = None,
              batch_size: Optional[int] = None, steps: int = 40, warmup: Optional[int] = None,
              pipeline_batches: Optional[int] = None, matmul: bool = True, **fields) -> dict:
    """Train ``steps`` timed steps of a ``gan`` model on random images and measure it (see the module
    docstring).  ``fields``: other :class:`~gan_anime.config.Config` fields (``jit_compile``,
    ``ema_decay``, ``r1_gamma`` ...).  Returns a JSON-able dict."""
    from gan_anime.hardware import resolve_precision
    from gan_anime.training.hooks import Hook
    from gan_anime.training.trainer import Trainer

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    probe = benchmark_config(gan, image_size, width, batch_size, run_dir="unused", **fields)
    period = probe.r1_every if probe.r1_gamma > 0 and probe.n_critic == 1 else 1
    window = math.lcm(period, probe.readback_every)     # whole R1 periods and read-back bursts
    window = window * max(1, math.ceil(4 / window))    # of at least 4 steps
    steps = window * max(1, math.ceil(steps / window))
    warmup = window if warmup is None else warmup       # every compiled variant runs at least once
    per_step = probe.batch_size * probe.n_critic
    data = random_images(probe, per_step * (warmup + steps + 1))

    class Clock(Hook):
        def __init__(self):
            self.times = []

        def step_end(self, event):
            self.times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        cfg = probe.replace(run_dir=tmp, epochs=1, max_steps=warmup)
        trainer = Trainer(cfg)
        trainer.fit(data, progress="lines")             # tracing and warm-up
        trainer.cfg = cfg.replace(max_steps=warmup + steps)
        clock = Clock()
        start = time.perf_counter()
        trainer.fit(data, hooks=[clock], progress="lines")
        rates = window_rates([start] + clock.times, window, per_step)
        bare = bare_step_rates(trainer, data, warmup + steps, steps, window)
        pipeline = pipeline_images_per_s(trainer, data, pipeline_batches or max(steps, 50))
        peak = peak_rss_mb()
        if cfg.jit_compile:   # graph_flops does not enter XLA clusters: count the same step traced without
            trainer = Trainer(cfg.replace(jit_compile=False, run_dir=os.path.join(tmp, "count")))
        batch = next(trainer._batches(data, start=0, end=1))
        flops = step_flops_per_image(trainer, batch, range(warmup, warmup + steps))
    train_rate = statistics.median(rates)
    result = {
        "benchmark": "gan_anime", "gan": gan, "image_size": cfg.image_size, "g_width": cfg.g_width,
        "d_width": cfg.d_width, "batch_size": cfg.batch_size, "n_critic": cfg.n_critic,
        "jit_compile": cfg.jit_compile, "precision": resolve_precision(cfg.precision), "ema_decay": cfg.ema_decay, "r1_gamma": cfg.r1_gamma,
        "r1_every": cfg.r1_every, "mbstd_group": cfg.mbstd_group, "readback_every": cfg.readback_every,
        "steps": steps, "warmup_steps": warmup, "window_steps": window,
        "train_images_per_s": round(train_rate, 2),
        "train_images_per_s_windows": [round(r, 1) for r in rates],
        "bare_step_images_per_s": round(statistics.median(bare), 2),
        "pipeline_images_per_s": round(pipeline, 1),
        "pipeline_vs_train": round(pipeline / train_rate, 1),
        "flops_per_image": round(flops),
        "flops_per_image_by_layers": round(layer_flops_per_image(cfg)),
        "achieved_gflops": round(flops * train_rate / 1e9, 2),
        "peak_rss_mb": peak,
    }
    result.update(machine_info(matmul))
    if matmul:
        result["mfu"] = round(result["achieved_gflops"] / result["matmul_gflops"], 3)
    return result


def bare_step_rates(trainer, data, first: int, steps: int, window: int) -> List[float]:
    """Images/s of the trainer's compiled steps called back to back with nothing else (no per-step
    read-back, log row or hooks; one read-back per window), for ``steps`` steps from step ``first``.
    Against ``train_images_per_s`` it prices the training loop around the step."""
    cfg = trainer.cfg
    it = trainer._batches(data, start=first, end=first + steps)
    times = [time.perf_counter()]
    for s in range(first, first + steps):
        stats = trainer.train_step(s)(next(it))
        if (s - first + 1) % window == 0:
            float(stats["d_loss"])
            times.append(time.perf_counter())
    return window_rates(times, 1, window * cfg.batch_size * cfg.n_critic)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def machine_info(matmul: bool = True) -> dict:
    """The CPU, core count, TensorFlow version, whether oneDNN is on, and the matmul rate."""
    import tensorflow as tf
    from gan_anime.hardware import cpu_name
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "tensorflow": tf.__version__,
            "onednn": onednn_enabled(), "gpus": len(tf.config.list_physical_devices("GPU"))}
    if matmul:
        info["matmul_gflops"] = round(matmul_gflops(), 1)
    return info


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process (TF_ENABLE_ONEDNN_OPTS, or the
    default for this CPU when unset)."""
    from tensorflow.python.util import _pywrap_util_port
    return bool(_pywrap_util_port.IsMklEnabled())




def op_time_profile(trainer, data, first: int, steps: int, top: int = 12) -> Dict[str, float]:
    """Where a step's time goes: the share of TensorFlow op time by op type over ``steps`` steps from
    step ``first``, traced with TensorFlow's profiler (``tf.profiler.experimental``) and read from its
    XSpace.  Returns {op type: fraction of the op time}, the ``top`` largest, then "other"."""
    import glob
    import collections
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    it = trainer._batches(data, start=first, end=first + steps)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for s in range(first, first + steps):
                stats = trainer.train_step(s)(next(it))
            float(stats["d_loss"])
        finally:
            tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        for path in glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")):
            with open(path, "rb") as f:
                space.MergeFromString(f.read())
    by_type: Dict[str, float] = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):   # the executor's threads (not tf.data's, not Python)
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name   # "scope/op_name:OpType"
                op, _, kind = name.rpartition(":")
                if op and kind and "::" not in name and not kind.endswith("PartitionedCall"):
                    by_type[kind] += event.duration_ps
    total = sum(by_type.values()) or 1
    shares = {k: round(v / total, 3) for k, v in by_type.most_common(top)}
    shares["other"] = round(1 - sum(shares.values()), 3)
    return shares


def profile(gan: str = "dcgan", image_size: int = 64, width: Optional[int] = None,
            batch_size: Optional[int] = None, steps: int = 20, **fields) -> dict:
    """:func:`op_time_profile` of a fresh trainer's steps after a warm-up of 8 steps, with its config."""
    from gan_anime.hardware import resolve_precision
    from gan_anime.training.trainer import Trainer
    with tempfile.TemporaryDirectory() as tmp:
        cfg = benchmark_config(gan, image_size, width, batch_size, run_dir=tmp, **fields)
        trainer = Trainer(cfg)
        data = random_images(cfg, cfg.batch_size * cfg.n_critic * (steps + 9))
        it = trainer._batches(data, start=0, end=8)
        for s in range(8):
            trainer.train_step(s)(next(it))
        shares = op_time_profile(trainer, data, 8, steps)
    return {"gan": gan, "image_size": cfg.image_size, "g_width": cfg.g_width, "batch_size": cfg.batch_size,
            "precision": resolve_precision(cfg.precision), "steps": steps, "op_time": shares}
