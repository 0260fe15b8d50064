"""precision="bfloat16": Keras mixed_bfloat16 networks with float32 variables, outputs and losses."""

import numpy as np
import pytest

from gan_anime.config import Config, validate
from gan_anime.data.folder import ImageSet


def _cfg(tmp_path, **kw):
    return Config(image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=8, conditional=False,
                  run_dir=str(tmp_path), checkpoint_every=0, **kw)


def test_bfloat16_networks_compute_in_bfloat16_and_keep_float32_weights(tmp_path):
    import keras
    import tensorflow as tf
    from gan_anime.models import build_models
    before = keras.config.dtype_policy().name
    G, D = build_models(_cfg(tmp_path, precision="bfloat16").replace(conditional=True, num_hair=3, num_eye=2))
    assert keras.config.dtype_policy().name == before   # the process's policy is left as it was
    labels = (tf.constant([0, 1]), tf.constant([1, 0]))
    images = G(tf.random.normal([2, 8]), labels)
    logits = D(images, labels)
    assert G.body.layers[0].compute_dtype == "bfloat16" and D.body.layers[0].compute_dtype == "bfloat16"
    assert images.dtype == tf.float32 and logits.dtype == tf.float32
    assert {w.dtype for w in G.weights + D.weights} == {"float32"}
    G32, _ = build_models(_cfg(tmp_path, precision="float32"))
    assert G32.body.layers[0].compute_dtype == "float32"


def test_bfloat16_training_and_checkpoints_move_between_precisions(tmp_path):
    from gan_anime.training.trainer import Trainer
    rng = np.random.default_rng(0)
    data = ImageSet(images=rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8))
    trainer = Trainer(_cfg(tmp_path, precision="bfloat16", max_steps=4))
    g0 = [w.numpy().copy() for w in trainer.G.trainable_weights]
    result = trainer.fit(data)
    assert result.step == 4 and all(np.isfinite(v) for v in result.last.values())
    assert all(not np.allclose(a, w.numpy()) for a, w in zip(g0, trainer.G.trainable_weights))
    # The same checkpoint restores into a float32 trainer (variables are float32 in both).
    f32 = Trainer(_cfg(tmp_path, precision="float32", max_steps=4))
    assert f32.restore() == result.checkpoint
    for a, b in zip(trainer.G_ema.weights, f32.G_ema.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    from gan_anime.inference import generator_inputs, run_generator
    noise, labels = generator_inputs(f32.cfg, 4, 0)
    bf16_images = run_generator(trainer.G_ema, noise, labels).astype(int)
    f32_images = run_generator(f32.G_ema, noise, labels).astype(int)
    assert np.abs(bf16_images - f32_images).mean() < 4   # bfloat16 rounding, not another network


def test_unknown_precision_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, float16, got 'float8'"):
        validate(_cfg(tmp_path, precision="float8"))


@pytest.mark.parametrize("flags, expected", [({"avx2", "avx512f"}, "float32"), ({"avx512f", "avx512_bf16"}, "bfloat16"),
                                             ({"amx_bf16"}, "bfloat16")])
def test_auto_precision_follows_the_cpu(monkeypatch, flags, expected):
    from gan_anime import hardware
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    assert hardware.resolve_precision("auto") == expected
    assert hardware.resolve_precision("float32") == "float32"
    assert hardware.resolve_precision("bfloat16") == "bfloat16"


def test_generating_is_float32_whatever_the_run_trained_in(tmp_path):
    import gan_anime
    from gan_anime.training.trainer import Trainer
    rng = np.random.default_rng(0)
    data = ImageSet(images=rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8))
    Trainer(_cfg(tmp_path, precision="bfloat16", max_steps=1)).fit(data)
    _cfg(tmp_path, precision="bfloat16").save(str(tmp_path / "config.json"))
    run = gan_anime.load(str(tmp_path))
    assert run.generator.body.layers[0].compute_dtype == "float32"


# ------------------------------------------------------------------------------ float16 (loss scaling)
def test_float16_trains_with_loss_scaling_and_checkpoints_its_scale(tmp_path):
    import keras
    import tensorflow as tf
    from gan_anime.training.trainer import Trainer
    rng = np.random.default_rng(0)
    data = ImageSet(images=rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8))
    trainer = Trainer(_cfg(tmp_path, precision="float16", max_steps=4))
    assert trainer.G.body.layers[0].compute_dtype == "float16"
    assert isinstance(trainer.g_opt, keras.optimizers.LossScaleOptimizer)
    result = trainer.fit(data)
    assert result.step == 4 and all(np.isfinite(v) for v in result.last.values())
    assert int(trainer.g_opt.iterations.numpy()) == 4   # no step skipped at the initial scale here
    names = {n for n, _ in tf.train.list_variables(result.checkpoint)}
    assert {"loss_scale/g_scale/.ATTRIBUTES/VARIABLE_VALUE", "loss_scale/d_good_steps/.ATTRIBUTES/VARIABLE_VALUE"} <= names
    # Adam's slots are stored under the names other precisions use.
    assert any(n.startswith("g_optimizer/") for n in names) and not any("inner_optimizer" in n for n in names)
    trainer.g_opt.dynamic_scale.assign(1024.0)
    trainer.d_opt.step_counter.assign(7)
    path = trainer.save()
    again = Trainer(_cfg(tmp_path, precision="float16", max_steps=4))
    assert again.restore() == path
    assert float(again.g_opt.dynamic_scale.numpy()) == 1024.0 and int(again.d_opt.step_counter.numpy()) == 7
    # float32 reads a float16 checkpoint, and float16 a float32 one (loss scaling then starts afresh).
    f32 = Trainer(_cfg(tmp_path, precision="float32", max_steps=4))
    assert f32.restore() == path and int(f32.g_opt.iterations.numpy()) == 4
    other = tmp_path / "other"
    f32_run = Trainer(_cfg(other, precision="float32", max_steps=3))
    f32_path = f32_run.fit(data).checkpoint
    assert f32_run._checkpoint_for(f32_path) is f32_run.checkpoint   # one checkpoint object outside float16
    f16 = Trainer(_cfg(other, precision="float16", max_steps=3))
    assert f16.restore() is not None
    assert int(f16.g_opt.iterations.numpy()) == 3 and float(f16.g_opt.dynamic_scale.numpy()) == 2.0 ** 15
    np.testing.assert_array_equal(f16.g_opt.inner_optimizer.variables[2].numpy(), f32_run.g_opt.variables[2].numpy())


def _scaled_model():
    import keras
    from gan_anime.models import dtype_policy
    with dtype_policy("mixed_float16"):
        model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(1, dtype="float32")])
    model.build((None, 3))
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2))
    opt.build(model.trainable_variables)
    return model, opt


def test_an_overflowing_float16_step_is_skipped_and_halves_the_scale():
    import tensorflow as tf
    from gan_anime.training.step import MIN_LOSS_SCALE, apply_gradients, scaled_loss
    model, opt = _scaled_model()

    @tf.function
    def step(factor):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(tf.ones([4, 3]))) * factor
            target = scaled_loss(opt, loss)
        grads = tape.gradient(target, model.trainable_variables)
        return apply_gradients(opt, grads, model.trainable_variables), tf.linalg.global_norm(grads)

    before = [w.numpy().copy() for w in model.trainable_variables]
    norm, scaled_norm = step(tf.constant(1.0))
    assert float(norm) == pytest.approx(float(scaled_norm) / 2.0 ** 15, rel=1e-5) and float(norm) > 0
    moved = [w.numpy().copy() for w in model.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(before, moved))
    norm, _ = step(tf.constant(float("inf")))   # an overflow: no update, the scale halves, norm 0
    assert float(norm) == 0.0 and float(opt.dynamic_scale.numpy()) == 2.0 ** 14
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(moved, model.trainable_variables))
    assert int(opt.iterations.numpy()) == 1
    opt.dynamic_scale.assign(MIN_LOSS_SCALE)    # still non-finite at the floor: NaN, for the loop's guard
    norm, _ = step(tf.constant(float("inf")))
    assert np.isnan(float(norm))


def test_one_replica_overflowing_makes_every_replica_skip(tmp_path):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "tests", "_float16_replicas.py")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "skipped on both replicas"
