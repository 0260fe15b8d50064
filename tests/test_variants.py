"""GAN variants as compositions: one step each, update patterns, exact resume across a critic cycle."""

import os

import numpy as np
import pytest
import tensorflow as tf

from gan_anime.config import Config, validate
from gan_anime.data.folder import ImageSet
from gan_anime.data.pipeline import make_dataset, steps_per_epoch
from gan_anime.losses import LOSSES, generator_loss
from gan_anime.training.step import active_penalties
from gan_anime.training.trainer import Trainer
from gan_anime.variants import VARIANTS, get_variant

TAGS = dict(conditional=True, num_hair=3, num_eye=2, hair_classes=("a", "b", "c"), eye_classes=("x", "y"))
#: What each variant reports besides d_loss and g_loss, on a step without lazy R1.
REPORTED = {"dcgan": {"d_real", "d_fake"}, "acgan": {"d_real", "d_fake", "cls_real", "cls_fake"},
            "wgan-gp": {"w_distance", "gp"}, "hinge": {"real_score", "fake_score"}}


def tagged_data(n=48, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return ImageSet(images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                    hair=rng.integers(0, 3, n).astype(np.int32), eye=rng.integers(0, 2, n).astype(np.int32))


def tiny(gan, run_dir, **kw):
    fields = dict(image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=8, epochs=4, checkpoint_every=0,
                  run_dir=str(run_dir), **TAGS)
    fields.update(kw)
    return Config.for_gan(gan, **fields)


def weights(net):
    return [w.numpy().copy() for w in net.trainable_weights]


def same(a, b):
    """Two runs' weights are the same up to float round-off: graphs that differ by an operation that changes
    nothing (a product with 1) may be fused differently (seen: 2e-9 apart in float32 on an AVX2 EPYC, where the
    changes these tests look for are 1e-4)."""
    return all(np.allclose(x, y, rtol=0, atol=1e-7) for x, y in zip(a, b))


@pytest.mark.parametrize("gan", list(VARIANTS))
def test_one_step_per_variant(tmp_path, gan):
    """Losses finite, every weight of both networks changes, optimizer counters follow the update pattern."""
    trainer = Trainer(tiny(gan, tmp_path, max_steps=2, r1_every=2))
    g0, d0 = weights(trainer.G), weights(trainer.D)
    result = trainer.fit(tagged_data(), progress="lines")
    assert result.step == 2 and result.status == "max_steps"
    assert all(np.isfinite(v) for v in result.last.values()), result.last
    assert {"d_loss", "g_loss"} | REPORTED[gan] <= set(result.last), result.last
    # The Wasserstein loss (fake - real) and the gradient penalty do not depend on the critic's last bias;
    # the hinge loss's gradient for it is (#fakes above -1) - (#reals below 1) = B - B while every logit is
    # inside the margin, as all are at initialisation.
    constant = {"wgan-gp": {"discriminator/logit/bias"}, "hinge": {"discriminator/logit_sn/logit/bias"}}.get(gan, set())
    for before, net in ((g0, trainer.G), (d0, trainer.D)):
        same = [w.path for a, w in zip(before, net.trainable_weights) if np.allclose(a, w.numpy())]
        same = [p for p in same if p not in constant]
        assert not same, f"{gan}: {net.name} weights that did not change: {same}"
    n_critic = trainer.cfg.n_critic
    assert n_critic == (5 if gan == "wgan-gp" else 1)
    assert int(trainer.g_opt.iterations) == 2 and int(trainer.d_opt.iterations) == 2 * n_critic


def test_critic_steps_count_and_schedules_count_steps(tmp_path):
    """n_critic = 3: three D updates per G update; an epoch is a pass over the images; both schedules count steps."""
    data = tagged_data(n=48)
    cfg = tiny("wgan-gp", tmp_path, n_critic=3, epochs=1,
               g_schedule=dict(kind="exponential", initial_lr=1e-3, decay_steps=1, base=0.5),
               d_schedule=dict(kind="exponential", initial_lr=1e-3, decay_steps=1, base=0.5))
    trainer = Trainer(cfg)
    assert trainer.steps_per_epoch(48) == 48 // 8 // 3 == 2
    result = trainer.fit(data, progress="lines")
    assert result.step == 2 and result.epoch == 1
    assert int(trainer.g_opt.iterations) == 2 and int(trainer.d_opt.iterations) == 6
    lr_g, lr_d = trainer.learning_rates()
    assert lr_g == pytest.approx(1e-3 * 0.5 ** 2) and lr_d == pytest.approx(lr_g)


def _checkpoint(run_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "OBJECT_GRAPH" not in k and not k.startswith("save_counter")}


@pytest.mark.parametrize("gan,extra", [("wgan-gp", dict(n_critic=3)),
                                       ("acgan", dict(diffaugment="color,translation,cutout"))])
def test_resume_is_exact_across_a_critic_cycle(tmp_path, gan, extra):
    """Stop after step 1 of 3 (mid-epoch, after a full critic cycle) and resume: same weights, optimizer
    slots and counters as the uninterrupted run, bit for bit (DiffAugment draws replay too)."""
    data = tagged_data(n=72)   # 72 // 8 // 3 = 3 steps per epoch with 3 critic updates
    whole = Trainer(tiny(gan, tmp_path / "whole", epochs=2, **extra))
    whole.fit(data, progress="lines")
    first = Trainer(tiny(gan, tmp_path / "split", epochs=2, max_steps=1, **extra))
    assert first.fit(data, progress="lines").step == 1
    second = Trainer(tiny(gan, tmp_path / "split", epochs=2, **extra))
    assert second.restore() is not None and int(second.counters.step) == 1
    result = second.fit(data, progress="lines")
    assert result.step == whole.steps_per_epoch(72) * 2 == int(whole.counters.step)
    a, b = _checkpoint(tmp_path / "whole"), _checkpoint(tmp_path / "split")
    assert a.keys() == b.keys() and len(a) > 20
    diff = {k: float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a if a[k].size}
    assert max(diff.values()) == 0.0, {k: v for k, v in diff.items() if v}


def test_diffaugment_changes_training_and_is_seeded(tmp_path):
    data = tagged_data()
    out = {}
    for name, policy in (("off", ""), ("on", "color,translation,cutout"), ("again", "color,translation,cutout")):
        trainer = Trainer(tiny("dcgan", tmp_path / name, max_steps=2, diffaugment=policy))
        trainer.fit(data, progress="lines")
        out[name] = weights(trainer.D)
    assert all(np.array_equal(a, b) for a, b in zip(out["on"], out["again"]))
    assert any(not np.allclose(a, b) for a, b in zip(out["off"], out["on"]))


@pytest.mark.parametrize("gan", ["dcgan", "wgan-gp"])
def test_top_k_training_changes_only_g_and_only_after_the_first_epoch(tmp_path, gan):
    """The kept fraction starts at the whole batch (epoch 0 trains as top_k 1 does), then G's update alone
    changes: D's loss does not depend on which fakes G learns from."""
    n_critic = 2 if gan == "wgan-gp" else 1    # the critic-then-generator pattern, at less cost than 5
    data = tagged_data(16 * n_critic)
    spe = steps_per_epoch(len(data), 8, n_critic)
    out = {}
    for name, steps, extra in (("all", spe, {}), ("top", spe, dict(top_k=0.25, top_k_decay=0.01)),
                               ("all+1", spe + 1, {}), ("top+1", spe + 1, dict(top_k=0.25, top_k_decay=0.01))):
        trainer = Trainer(tiny(gan, tmp_path / name, max_steps=steps, n_critic=n_critic, r1_gamma=0.0,
                               samples_per_grid=1, **extra))
        trainer.fit(data, progress="lines")
        out[name] = weights(trainer.G), weights(trainer.D)
    for net in (0, 1):
        assert same(out["all"][net], out["top"][net])
    assert same(out["all+1"][1], out["top+1"][1]), "top-k reached D"
    assert not same(out["all+1"][0], out["top+1"][0]), "top-k did not reach G"


def test_lecam_reaches_d_alone_and_its_anchors_follow_the_logits(tmp_path):
    """LeCam (Tseng et al. 2021) changes D's loss only: one simultaneous step later G is unchanged and D is not.
    Its anchors move toward the step's mean logits (warm-up decay 1/10, then 2/11) and come back on resume."""
    data = tagged_data(16)
    out = {}
    for name, extra in (("off", {}), ("on", dict(lecam=0.3))):
        trainer = Trainer(tiny("dcgan", tmp_path / name, max_steps=1, r1_gamma=0.0, samples_per_grid=1, **extra))
        out[name] = trainer, trainer.fit(data, progress="lines").last
    (off, _), (on, last) = out["off"], out["on"]
    assert off.lecam_anchors is None and "lecam" not in out["off"][1]
    assert same(weights(off.G), weights(on.G))
    assert not same(weights(off.D), weights(on.D)), "LeCam did not reach D"
    assert last["lecam"] > 0   # the anchors start at 0, where D's first logits are rarely all on the safe side
    first = on.lecam_anchors.numpy()
    np.testing.assert_allclose(first, [0.9 * last["real_logit"], 0.9 * last["fake_logit"], 1.0], rtol=1e-5)
    resumed = Trainer(tiny("dcgan", tmp_path / "on", max_steps=2, r1_gamma=0.0, samples_per_grid=1, lecam=0.3))
    assert resumed.restore() is not None
    np.testing.assert_array_equal(resumed.lecam_anchors.numpy(), first)
    last = resumed.fit(data, progress="lines").last
    d = 2.0 / 11.0
    np.testing.assert_allclose(resumed.lecam_anchors.numpy()[:2], d * first[:2] + (1 - d) * np.array(
        [last["real_logit"], last["fake_logit"]]), rtol=1e-5)
    # Turned on when resuming a run trained without it: the anchors start afresh, the rest is restored.
    late = Trainer(tiny("dcgan", tmp_path / "off", max_steps=2, r1_gamma=0.0, samples_per_grid=1, lecam=0.3))
    assert late.restore() is not None and int(late.counters.step) == 1
    assert late.lecam_anchors.numpy().tolist() == [0.0, 0.0, 0.0]
    late.fit(data, progress="lines")
    assert late.lecam_anchors.numpy()[2] == 1.0


def test_acgan_classifier_heads_and_aux_weight(tmp_path):
    data = tagged_data()
    trainer = Trainer(tiny("acgan", tmp_path / "a", max_steps=1))
    out = trainer.D(tf.zeros([5, 16, 16, 3]), None, training=False)
    assert set(out) == {"logits", "hair", "eye"}
    assert out["logits"].shape == (5,) and out["hair"].shape == (5, 3) and out["eye"].shape == (5, 2)
    g_after = {}
    for weight in (0.0, 1.0):
        t = Trainer(tiny("acgan", tmp_path / str(weight), max_steps=1, aux_weight=weight, r1_gamma=0.0))
        last = t.fit(data, progress="lines").last
        assert last["cls_real"] > 0 and last["cls_fake"] > 0   # reported whatever the weight
        g_after[weight] = weights(t.G)
    assert any(not np.allclose(a, b) for a, b in zip(g_after[0.0], g_after[1.0])), "aux loss did not reach G"


def test_pipeline_batches_per_step():
    data = tagged_data(n=50)
    assert steps_per_epoch(50, 8, 3) == 2
    with pytest.raises(ValueError, match=r"one step needs 48 images \(batch size 8 x 6 critic updates per step\), more than the dataset's 40"):
        steps_per_epoch(40, 8, 6)
    ds = make_dataset(data, seed=3, start_step=0, end_step=4, global_batch=8, noise_dim=5, augment=False,
                      batches_per_step=3)
    elems = list(ds)
    assert len(elems) == 4
    e = elems[0]
    assert e["images"].shape == (3, 8, 16, 16, 3) and e["noise"].shape == (3, 8, 5) and e["alpha"].shape == (3, 8)
    assert e["g_noise"].shape == (8, 5) and list(e["position"].numpy()) == [0, 1, 2]
    assert list(elems[1]["position"].numpy()) == [3, 4, 5]
    # An epoch's two steps take 6 distinct batches: 48 distinct images of the 50.
    seen = np.concatenate([el["images"].numpy().reshape(24, -1) for el in elems[:2]])
    assert len({row.tobytes() for row in seen}) == 48
    one = list(make_dataset(data, seed=3, start_step=0, end_step=1, global_batch=8, noise_dim=5, augment=False))[0]
    assert one["images"].shape == (8, 16, 16, 3) and "g_noise" not in one and int(one["position"]) == 0
    a = e["alpha"].numpy()
    assert (a >= 0).all() and (a < 1).all() and len(np.unique(a)) == a.size


def test_registry_and_checks():
    with pytest.raises(ValueError, match="unknown gan 'sngan'; expected one of dcgan, acgan, wgan-gp, hinge"):
        get_variant("sngan")
    with pytest.raises(ValueError, match="no batch norm and no minibatch-stddev"):
        validate(Config(gan="wgan-gp", loss="wasserstein", r1_gamma=0.0))
    with pytest.raises(ValueError, match="trains with the hinge loss"):
        validate(Config(gan="hinge"))
    with pytest.raises(ValueError, match="acgan' is conditional: it needs hair/eye tags"):
        validate(Config(gan="acgan", conditional=False))
    with pytest.raises(ValueError, match="has no R1 penalty"):
        validate(Config.for_gan("wgan-gp", r1_gamma=1.0))
    with pytest.raises(ValueError, match="unknown DiffAugment policy 'blur'"):
        validate(Config(diffaugment="color,blur"))
    cfg = Config.for_gan("wgan-gp")
    assert (cfg.n_critic, cfg.beta1, cfg.beta2, cfg.g_schedule.initial_lr, cfg.mbstd_group) == (5, 0.0, 0.9, 1e-4, 0)
    assert Config.for_gan("wgan-gp", n_critic=2).n_critic == 2
    assert validate(cfg) is cfg


def test_penalty_schedule():
    cfg = Config(r1_every=4)
    assert [sorted(active_penalties(get_variant("dcgan"), cfg, s)) for s in range(5)] == [["r1"], [], [], [], ["r1"]]
    assert active_penalties(get_variant("dcgan"), cfg.replace(r1_gamma=0.0), 0) == frozenset()
    wgan = Config.for_gan("wgan-gp")
    assert all(active_penalties(get_variant("wgan-gp"), wgan, s) == {"gp"} for s in range(3))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_generator_loss_needs_only_fake_logits(name):
    fake = tf.constant([0.3, -1.2, 2.0])
    for real in (tf.constant([5.0, -5.0, 0.0]), tf.constant([-2.0, 1.0, 9.0])):
        np.testing.assert_allclose(LOSSES[name](real, fake)[1].numpy(), generator_loss(LOSSES[name], fake).numpy())


def test_runs_from_before_the_variants_still_load(tmp_path):
    """A config.json written before --gan existed (no gan, n_critic, gp_weight, aux_weight, diffaugment) is
    a dcgan run: it loads for generation and resumes."""
    import json

    import gan_anime
    cfg = tiny("dcgan", tmp_path / "old", max_steps=1)
    Trainer(cfg).fit(tagged_data(), progress="lines")
    path = tmp_path / "old" / "config.json"
    cfg.save(str(path))   # as gan_anime.train does
    old = {k: v for k, v in json.loads(path.read_text()).items()
           if k not in ("gan", "n_critic", "gp_weight", "aux_weight", "diffaugment")}
    path.write_text(json.dumps(old))
    loaded = Config.load(str(path))
    assert loaded.gan == "dcgan" and loaded.n_critic == 1
    assert gan_anime.load(str(tmp_path / "old")).generate(2, seed=1, hair="b").shape == (2, 16, 16, 3)
    resumed = Trainer(loaded.replace(max_steps=2))
    assert resumed.restore() is not None
    assert resumed.fit(tagged_data(), progress="lines").step == 2
