"""Folder datasets: every image mode works, bad files are skipped and counted, empty folders fail clearly."""

import errno
import io
import json
import os

import numpy as np
import pytest
from absl import logging
from PIL import Image

import gan_anime
from gan_anime.data.folder import list_images, load_folder, load_image, read_tags


@pytest.fixture()
def messy_dir(tmp_path):
    d = tmp_path / "messy"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(10):  # good RGB images of odd sizes, one in a subfolder
        Image.fromarray(rng.integers(0, 255, (30 + i, 20 + 2 * i, 3), dtype=np.uint8)).save(d / f"good{i}.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(d / "sub" / "nested.webp")
    Image.fromarray(rng.integers(0, 255, (20, 20, 4), dtype=np.uint8), "RGBA").save(d / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (25, 25), dtype=np.uint8), "L").save(d / "gray.jpg")
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), "L").convert("P").save(d / "palette.gif")
    Image.fromarray(rng.integers(0, 255, (18, 18, 3), dtype=np.uint8)).save(d / "bitmap.bmp")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(d / "one.png")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "text.png").write_text("this is not an image")
    (d / "notes.txt").write_text("ignored: not an image extension")
    return d


def test_every_mode_loads_and_bad_files_are_skipped(messy_dir, caplog):
    caplog.set_level(logging.WARNING)
    data = load_folder(str(messy_dir), 16)
    # 10 jpg + webp + rgba + gray + palette + bmp + 1x1 = 16 good; truncated + text = 2 skipped
    assert len(data) == 16 and data.skipped == 2
    assert data.images.shape == (16, 16, 16, 3) and data.images.dtype == np.uint8
    assert not data.tagged
    assert "skipped 2 unreadable" in caplog.text


def test_training_runs_on_the_good_images(messy_dir, tmp_path):
    result = gan_anime.train(gan_anime.Config(data_dir=str(messy_dir), image_size=16, g_width=4, d_width=4,
                                              noise_dim=8, batch_size=8, epochs=1, run_dir=str(tmp_path / "run"),
                                              cache_dir=str(tmp_path / "cache"), samples_per_grid=4))
    assert result.status == "finished" and result.step == 2   # 16 good images / batch 8


def test_rgba_is_composited_on_white_and_one_pixel_is_upscaled():
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(buf, "PNG")
    assert (load_image(buf.getvalue(), 4) == 255).all()
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (10, 20, 30)).save(buf, "PNG")
    np.testing.assert_array_equal(load_image(buf.getvalue(), 4)[2, 2], [10, 20, 30])


def test_centre_crop_keeps_the_middle():
    a = np.zeros((10, 30, 3), np.uint8)
    a[:, 10:20] = 255            # the centred 10x10 square is white; the sides are black
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    assert (load_image(buf.getvalue(), 10) == 255).all()


def test_empty_folder_fails_naming_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files.*empty"):
        load_folder(str(tmp_path / "empty"), 16)


def test_folder_without_readable_image_fails(tmp_path):
    d = tmp_path / "junk"
    d.mkdir()
    (d / "a.png").write_text("nope")
    with pytest.raises(ValueError, match="no readable image under .*junk"):
        load_folder(str(d), 16)


def test_missing_folder_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_images(str(tmp_path / "nowhere"))


def test_tags_csv_and_json(messy_dir, tmp_path):
    csv_path = tmp_path / "tags.csv"
    csv_path.write_text("filename,hair,eye\ngood0.jpg,blue,red\ngood1.jpg,pink,red\nsub/nested.webp,blue,green\n")
    data = load_folder(str(messy_dir), 16, str(csv_path))
    assert len(data) == 3 and data.tagged
    assert data.hair_classes == ("blue", "pink") and data.eye_classes == ("green", "red")
    assert list(data.hair) == [0, 1, 0] and list(data.eye) == [1, 1, 0]
    json_path = tmp_path / "tags.json"
    json_path.write_text(json.dumps({"good0.jpg": {"hair": "blue", "eye": "red"},
                                     "good1.jpg": {"hair": "pink", "eye": "red"}}))
    assert len(load_folder(str(messy_dir), 16, str(json_path))) == 2


@pytest.mark.parametrize("content, message", [
    ("file,colour\nx,y\n", "header with filename,hair,eye"),
    ("filename,hair,eye\n", "no rows"),
])
def test_bad_tags_files(tmp_path, content, message):
    p = tmp_path / "t.csv"
    p.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_tags(str(p))


def test_decoded_images_are_cached(messy_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="absl")   # whatever level parsing absl's flags left it at
    first = load_folder(str(messy_dir), 16, cache_dir=str(cache))
    assert sorted(f.rsplit(".", 1)[1] for f in os.listdir(cache)) == ["json", "npy"]   # one entry, complete
    assert "decoded 16 images (2 unreadable)" in caplog.text and "images/s" in caplog.text
    caplog.clear()
    second = load_folder(str(messy_dir), 16, cache_dir=str(cache))
    assert "decoded 16 images" not in caplog.text and "using decoded images cached in" in caplog.text
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.images, load_folder(str(messy_dir), 16).images)   # no cache: the same
    assert second.skipped == 2 and second.images.ctypes.data % 64 == 0


def test_a_damaged_cache_is_decoded_again(messy_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    first = np.array(load_folder(str(messy_dir), 16, cache_dir=str(cache)).images)
    (npy,) = [cache / f for f in os.listdir(cache) if f.endswith(".npy")]
    cached = np.load(npy, mmap_mode="r+")   # flip one pixel value of the cached array
    cached[3, 2, 1, 0] ^= 0xFF
    cached.flush()
    del cached
    caplog.set_level(logging.WARNING)
    again = load_folder(str(messy_dir), 16, cache_dir=str(cache))
    assert "is unreadable" in caplog.text and "decoding again" in caplog.text
    np.testing.assert_array_equal(first, again.images)


def test_a_cache_that_cannot_be_written_decodes_into_memory(messy_dir, tmp_path, caplog, monkeypatch):
    (tmp_path / "file").write_text("a file where the cache folder would go")
    caplog.set_level(logging.WARNING)
    data = load_folder(str(messy_dir), 16, cache_dir=str(tmp_path / "file" / "cache"))
    assert len(data) == 16 and "cannot write the decoded-image cache" in caplog.text
    caplog.clear()

    def full_disk(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full_disk)
    data = load_folder(str(messy_dir), 16, cache_dir=str(tmp_path / "cache"))
    assert len(data) == 16 and "No space left on device); decoding into memory instead" in caplog.text
    assert not [f for f in os.listdir(tmp_path / "cache") if f.endswith(".npy")]   # no half-written file left


def test_faces_count_with_a_data_dir_is_refused(messy_dir, tmp_path):
    from gan_anime.config import Config, validate
    from gan_anime.data import load_data
    cfg = Config(data_dir=str(messy_dir), faces_count=64, image_size=16)
    for check in (validate, load_data):
        with pytest.raises(ValueError, match=r"^faces_count applies to the built-in faces; with a data folder "
                                             r"\(.*messy\) every readable image is used"):
            check(cfg)
    validate(cfg.replace(faces_count=Config().faces_count))   # the default: fine
    validate(cfg.replace(data_dir=None))                      # the built-in faces: fine
    # A run saved before this check resumes: its faces_count never applied to its folder.
    cfg.save(str(tmp_path / "config.json"))
    assert Config.load(str(tmp_path / "config.json")).faces_count == Config().faces_count
