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
