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
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, got 'float8'"):
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
