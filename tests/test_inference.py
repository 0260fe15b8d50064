"""Generation is a pure function of (checkpoint, seed, labels)."""

import numpy as np
import pytest
from PIL import Image

import gan_anime


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("inf")
    data = root / "imgs"
    data.mkdir()
    rng = np.random.default_rng(3)
    rows = ["filename,hair,eye"]
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(data / f"{i}.png")
        rows.append(f"{i}.png,{['red', 'blue', 'white'][i % 3]},{['green', 'black'][i % 2]}")
    (root / "tags.csv").write_text("\n".join(rows) + "\n")
    cfg = gan_anime.Config(data_dir=str(data), tags=str(root / "tags.csv"), image_size=16, g_width=4, d_width=4,
                           noise_dim=8, batch_size=8, epochs=1, run_dir=str(root / "run"),
                           cache_dir=str(root / "cache"), samples_per_grid=4)
    gan_anime.train(cfg)
    return str(root / "run")


def test_same_seed_same_pixels(run_dir):
    a = gan_anime.load(run_dir).generate(4, seed=7)
    b = gan_anime.load(run_dir).generate(4, seed=7)
    assert a.shape == (4, 16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gan_anime.load(run_dir).generate(4, seed=8))


def test_image_depends_only_on_seed_and_index(run_dir):
    run = gan_anime.load(run_dir)
    np.testing.assert_array_equal(run.generate(8, seed=3)[:4], run.generate(4, seed=3))


def test_labels_by_name_and_index(run_dir):
    run = gan_anime.load(run_dir)
    assert run.config.conditional and run.hair_classes == ("blue", "red", "white")
    np.testing.assert_array_equal(run.generate(2, seed=1, hair="red", eye="green"),
                                  run.generate(2, seed=1, hair=1, eye=1))
    assert run.eye_classes == ("black", "green")
    per_image = run.generate(3, seed=1, hair=["blue", "red", "white"], eye="black")
    assert per_image.shape[0] == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(hair="purple"), "unknown hair colour 'purple'"),
    (dict(eye=9), "out of range"),
    (dict(hair=["red"]), "1 labels for 2 images"),
])
def test_bad_labels(run_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gan_anime.load(run_dir).generate(2, seed=0, **kwargs)


@pytest.mark.parametrize("n, seed", [(0, 1), (-2, 1), (2, -1)])
def test_bad_counts_and_seeds(run_dir, n, seed):
    with pytest.raises(ValueError):
        gan_anime.load(run_dir).generate(n, seed=seed)


def test_grid_and_save(run_dir, tmp_path):
    run = gan_anime.load(run_dir)
    images = run.generate(5, seed=0)
    grid = run.grid(images)
    assert grid.size == (3 * 18 + 2, 2 * 18 + 2)
    out = run.save(images, str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "0000.png", "0001.png", "0002.png", "0003.png", "0004.png", "grid.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(f"{out}/0002.png")), images[2])


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gan_anime.load(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        gan_anime.load(str(tmp_path / "empty"))


# ------------------------------------------------------------------------------ interpolation
def test_interpolation_passes_through_each_seeds_face(run_dir):
    run = gan_anime.load(run_dir)
    frames = run.interpolate([3, 5, 9], frames=4)
    assert frames.shape == (9, 16, 16, 3) and frames.dtype == np.uint8
    for k, seed in enumerate([3, 5, 9]):
        face = run.generate(1, seed=seed)[0].astype(int)
        assert np.abs(frames[4 * k].astype(int) - face).max() <= 1, seed   # other batch size: rounding only
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[4])
    assert run.interpolate([3, 5, 9], frames=4, loop=True).shape == (12, 16, 16, 3)


def test_interpolation_blends_tags_or_keeps_given_ones(run_dir):
    from gan_anime.inference import generator_inputs, interpolation_inputs, slerp
    cfg = gan_anime.load(run_dir).config
    hair_of = {s: int(generator_inputs(cfg, 1, s)[1][0][0]) for s in range(20)}
    a = 0
    b = next(s for s in range(1, 20) if hair_of[s] != hair_of[a])
    noise, (hair, eye) = interpolation_inputs(cfg, [a, b], frames=4)
    assert noise.shape == (5, cfg.noise_dim) and hair.shape == (5, cfg.num_hair) and eye.shape == (5, cfg.num_eye)
    np.testing.assert_allclose(hair.sum(axis=1), 1.0, rtol=1e-6)
    assert hair[0, hair_of[a]] == 1.0 and hair[4, hair_of[b]] == 1.0
    np.testing.assert_allclose(hair[2, [hair_of[a], hair_of[b]]], [0.5, 0.5])
    # Noise by slerp: the midpoint keeps the norm of Gaussian noise instead of shrinking towards 0.
    za, zb = generator_inputs(cfg, 1, a)[0][0], generator_inputs(cfg, 1, b)[0][0]
    np.testing.assert_allclose(noise[2], slerp(za, zb, 0.5), rtol=1e-5)
    assert np.linalg.norm(noise[2]) > np.linalg.norm((za + zb) / 2)
    _, (hair, _) = interpolation_inputs(cfg, [a, b], frames=4, hair="white")
    assert (hair.argmax(axis=1) == cfg.hair_classes.index("white")).all() and (hair.max(axis=1) == 1.0).all()


def test_soft_labels_match_class_indices(run_dir):
    run = gan_anime.load(run_dir)
    cfg = run.config
    noise, (hair, eye) = gan_anime.inference.generator_inputs(cfg, 4, seed=2)
    onehot = (np.eye(cfg.num_hair, dtype=np.float32)[hair], np.eye(cfg.num_eye, dtype=np.float32)[eye])
    np.testing.assert_array_equal(run.generator(noise, (hair, eye)).numpy(), run.generator(noise, onehot).numpy())
    with pytest.raises(ValueError, match="hair labels must be vectors"):
        run.generator(noise, (onehot[0][:, :2], onehot[1]))


@pytest.mark.parametrize("seeds, frames, message", [
    ([1], 4, "at least 2 seeds"), ([1, 2], 0, "positive integer"), ([1, -2], 3, "seed must be"),
])
def test_bad_interpolations(run_dir, seeds, frames, message):
    with pytest.raises(ValueError, match=message):
        gan_anime.load(run_dir).interpolate(seeds, frames=frames)


def test_truncation_keeps_each_value_within_the_threshold_by_a_monotone_map():
    import math
    from gan_anime.inference import truncate_noise
    cdf = np.vectorize(lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0))))
    z = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
    assert truncate_noise(z, None) is z
    for t in (0.5, 1.0, 2.0):
        out = truncate_noise(z, t)
        assert out.shape == z.shape and out.dtype == np.float32 and np.abs(out).max() <= t
        # Elementwise and monotone: the order of the values is kept, so a seed's face keeps its look.
        order = np.argsort(z.ravel())
        assert np.all(np.diff(out.ravel()[order]) >= 0)
        # The values follow N(0, 1) truncated at +-t, not a clipped one.
        points = np.linspace(-t, t, 9)
        expected = (cdf(points) - cdf(-t)) / (cdf(t) - cdf(-t))
        measured = np.array([np.mean(out <= p) for p in points])
        np.testing.assert_allclose(measured, expected, atol=0.01)
        assert np.mean(np.abs(out) > 0.99 * t) < 0.01
    np.testing.assert_allclose(truncate_noise(z, 40.0), z, atol=1e-5)   # far out: nothing to truncate


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1.5"])
def test_bad_truncation(run_dir, bad):
    with pytest.raises(ValueError, match="truncation must be a positive number"):
        gan_anime.load(run_dir).generate(2, seed=1, truncation=bad)


def test_truncated_faces(run_dir):
    run = gan_anime.load(run_dir)
    plain, tame = run.generate(8, seed=4), run.generate(8, seed=4, truncation=0.5)
    assert not np.array_equal(plain, tame)
    np.testing.assert_array_equal(tame[:3], run.generate(3, seed=4, truncation=0.5))   # still by (seed, i)
    np.testing.assert_array_equal(plain, run.generate(8, seed=4, truncation=None))
    # Truncated faces lie nearer each other (nearer the average face) than the untruncated ones.
    spread = lambda x: float(x.astype(np.float32).std(axis=0).mean())   # noqa: E731
    assert spread(run.generate(64, seed=4, truncation=0.25)) < spread(run.generate(64, seed=4))
    frames = run.interpolate([4, 5], frames=3, truncation=0.5)
    np.testing.assert_array_equal(frames[0], tame[0])
    np.testing.assert_array_equal(frames[-1], run.generate(1, seed=5, truncation=0.5)[0])
