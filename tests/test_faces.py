"""Tests of the built-in ``faces`` dataset (gan_anime/data/faces.py)."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from PIL import Image

from gan_anime.data import faces

HAIR, EYE = faces.HAIR_COLORS, faces.EYE_COLORS


def _files(root):
    """{relative path: bytes} of the images and tags of a face directory."""
    out = {}
    for name in sorted(os.listdir(os.path.join(root, "images"))):
        with open(os.path.join(root, "images", name), "rb") as f:
            out["images/" + name] = f.read()
    with open(os.path.join(root, "tags.csv"), "rb") as f:
        out["tags.csv"] = f.read()
    return out


def _read_tags(root):
    with open(os.path.join(root, "tags.csv"), newline="") as f:
        return list(csv.DictReader(f))


# --- colour checks: the rendered pixels carry the tagged colours -------------------------------

def _rgb(hex_color):
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])


def _near(img, hex_color, tol):
    return int((np.abs(img.astype(int) - _rgb(hex_color)).max(-1) <= tol).sum())


def _close(a, b, tol):
    return int(np.abs(_rgb(a) - _rgb(b)).max()) <= tol


def _hair_ok(img, hair, eye):
    """The tagged hair colour covers >= 5% of the image and at least twice the area of any other
    hair colour (black is skipped: outlines are black; colours that the eyes share are skipped)."""
    count = {k: _near(img, v, 30) for k, v in HAIR.items()}
    others = [k for k in HAIR if k not in (hair, "black") and not _close(HAIR[k], EYE[eye], 30)]
    return count[hair] >= 0.05 * img.shape[0] ** 2 and all(count[k] < count[hair] / 2 for k in others)


def _eye_ok(img, hair, eye):
    """In the eye band, the tagged eye colour shows (>= 4 px) and beats every other eye colour
    (black is skipped: brows and lashes are black; colours the hair shares are skipped)."""
    s = img.shape[0]
    band = img[int(.36 * s):int(.58 * s), int(.12 * s):int(.88 * s)]
    count = {k: _near(band, v, 12) for k, v in EYE.items()}
    others = [k for k in EYE if k not in (eye, "black") and not _close(EYE[k], HAIR[hair], 24)]
    return count[eye] >= 4 and all(count[eye] > count[k] for k in others)


def test_rendered_colours_match_tags_and_wrong_tags_are_caught():
    hairs, eyes = list(HAIR), list(EYE)
    n, wrong_hair_caught, wrong_eye_caught = 40, 0, 0
    for i in range(n):
        img, hair, eye = faces.render_face(i, seed=7, size=64)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        assert _hair_ok(img, hair, eye), (i, hair, eye)
        assert _eye_ok(img, hair, eye), (i, hair, eye)
        # The same checks reject a wrong tag, so they really test the tags.
        wrong_hair = hairs[(hairs.index(hair) + 1 + i % 11) % len(hairs)]
        wrong_eye = [e for e in eyes if e not in (eye, "black")][i % 8]
        wrong_hair_caught += not _hair_ok(img, wrong_hair, eye)
        wrong_eye_caught += not _eye_ok(img, hair, wrong_eye)
    assert wrong_hair_caught >= 0.9 * n and wrong_eye_caught >= 0.9 * n


def test_background_is_far_from_every_hair_colour():
    for name, color in HAIR.items():
        assert not _close(color, faces.BACKGROUND_COLOR, 60), name
    for i in range(4):  # the plain background shows around every head
        img, _, _ = faces.render_face(i, seed=0, size=64)
        assert _near(img, faces.BACKGROUND_COLOR, 0) >= 100
    assert len(HAIR) == 12 and len(EYE) == 10
    assert list(HAIR)[:3] == ["orange", "white", "aqua"] and list(EYE)[-1] == "blue"
    assert len(set(HAIR.values())) == 12 and len(set(EYE.values())) == 10


# --- cache: determinism, layout, recovery, locking ---------------------------------------------

def test_deterministic_across_dirs_and_workers_and_seed_matters(tmp_path):
    a = faces.ensure_faces(12, seed=3, size=32, cache_dir=str(tmp_path / "a"), workers=2)
    b = faces.ensure_faces(12, seed=3, size=32, cache_dir=str(tmp_path / "b"), workers=1)
    assert a != b and os.path.basename(a) == os.path.basename(b)
    fa, fb = _files(a), _files(b)
    assert len(fa) == 13 and fa == fb
    c = faces.ensure_faces(12, seed=4, size=32, cache_dir=str(tmp_path / "c"), workers=1)
    fc = _files(c)
    assert sum(fa[k] != fc[k] for k in fa if k.startswith("images/")) >= 10
    # render_face gives the same pixels as the cached PNG.
    img, hair, eye = faces.render_face(5, seed=3, size=32)
    assert np.array_equal(np.asarray(Image.open(os.path.join(a, "images", "000005.png"))), img)
    assert _read_tags(a)[5] == {"filename": "images/000005.png", "hair": hair, "eye": eye}


def test_layout_tags_and_marker(tmp_path):
    root = faces.ensure_faces(24, seed=1, size=32, cache_dir=str(tmp_path), workers=2)
    assert root == faces.faces_dir(24, seed=1, size=32, cache_dir=str(tmp_path))
    assert os.path.basename(root) == "faces-v1-32px-24-seed1"
    with open(os.path.join(root, "tags.csv")) as f:
        assert f.readline() == "filename,hair,eye\n"
    rows = _read_tags(root)
    assert [r["filename"] for r in rows] == [f"images/{i:06d}.png" for i in range(24)]
    assert all(r["hair"] in HAIR and r["eye"] in EYE for r in rows)
    assert len({r["hair"] for r in rows}) >= 5 and len({r["eye"] for r in rows}) >= 5
    for r in rows:
        with Image.open(os.path.join(root, r["filename"])) as im:
            assert im.size == (32, 32) and im.mode == "RGB"
    with open(os.path.join(root, "COMPLETE")) as f:
        marker = json.load(f)
    assert (marker["count"], marker["seed"], marker["size"], marker["version"]) == (24, 1, 32, faces.VERSION)
    assert not [n for n in os.listdir(os.path.join(root, "images")) if not n.endswith(".png")]


def test_half_written_cache_is_resumed(tmp_path):
    clean = _files(faces.ensure_faces(16, seed=2, size=32, cache_dir=str(tmp_path / "clean"), workers=1))
    root = faces.ensure_faces(16, seed=2, size=32, cache_dir=str(tmp_path / "x"), workers=2)
    images = os.path.join(root, "images")
    os.remove(os.path.join(root, "COMPLETE"))
    os.remove(os.path.join(root, "tags.csv"))
    for i in (1, 7, 15):
        os.remove(os.path.join(images, f"{i:06d}.png"))
    with open(os.path.join(images, "000003.png"), "r+b") as f:   # truncated mid-write
        f.truncate(40)
    with open(os.path.join(images, "000004.png"), "wb") as f:     # garbage
        f.write(b"not a png")
    with open(os.path.join(images, ".tmp-dead.part"), "wb") as f:  # a killed writer's temp file
        f.write(b"x")
    kept = os.path.join(images, "000000.png")
    os.utime(kept, ns=(1, 1))
    # Without the marker the directory is not used as it is ...
    assert faces.ensure_faces(16, seed=2, size=32, cache_dir=str(tmp_path / "x"), workers=2) == root
    # ... it is completed: same bytes as a clean render, valid PNGs kept, marker written last.
    assert _files(root) == clean
    assert os.stat(kept).st_mtime_ns == 1
    assert os.path.isfile(os.path.join(root, "COMPLETE"))
    assert sorted(os.listdir(images)) == [f"{i:06d}.png" for i in range(16)]


def test_killed_render_is_recovered(tmp_path):
    count, cache = 150, str(tmp_path / "killed")
    # Load faces.py on its own in the child so it does not import TensorFlow through the package.
    # The child renders with 2 worker processes: they must exit once it is killed, or they would
    # keep the render lock and the resume below would wait forever.
    child = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("faces_child", {faces.__file__!r})
        mod = importlib.util.module_from_spec(spec); sys.modules["faces_child"] = mod
        spec.loader.exec_module(mod)
        mod.ensure_faces({count}, seed=9, size=32, cache_dir={cache!r}, workers=2)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child])
    images = os.path.join(faces.faces_dir(count, seed=9, size=32, cache_dir=cache), "images")
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(images) and len(os.listdir(images)) >= 10:
            break
        time.sleep(0.02)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    root = faces.faces_dir(count, seed=9, size=32, cache_dir=cache)
    if killed:
        assert not os.path.exists(os.path.join(root, "COMPLETE"))
        assert len([n for n in os.listdir(images) if n.endswith(".png")]) < count
    assert faces.ensure_faces(count, seed=9, size=32, cache_dir=cache, workers=2) == root
    clean = faces.ensure_faces(count, seed=9, size=32, cache_dir=str(tmp_path / "clean"), workers=2)
    assert _files(root) == _files(clean)
    assert os.path.isfile(os.path.join(root, "COMPLETE"))


def test_concurrent_callers_share_one_render(tmp_path):
    results, errors = [], []

    def run():
        try:
            results.append(faces.ensure_faces(20, seed=5, size=32, cache_dir=str(tmp_path), workers=1))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2 and results[0] == results[1]
    rows = _read_tags(results[0])
    assert len(rows) == 20
    clean = faces.ensure_faces(20, seed=5, size=32, cache_dir=str(tmp_path / "clean"), workers=1)
    assert _files(results[0]) == _files(clean)


# --- arguments ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(count=0), dict(count=-3), dict(count=2.5), dict(count=True), dict(count=10_000_000),
    dict(count=4, size=8), dict(count=4, size=1024), dict(count=4, size="64"),
    dict(count=4, seed=-1), dict(count=4, workers=0),
])
def test_bad_arguments_raise(tmp_path, kwargs):
    with pytest.raises(ValueError) as err:
        faces.ensure_faces(cache_dir=str(tmp_path), **kwargs)
    assert "\n" not in str(err.value)
    assert any(name in str(err.value) for name in ("count", "size", "seed", "workers"))
    assert not os.listdir(tmp_path)


def test_bad_arguments_of_path_and_render_functions():
    with pytest.raises(ValueError, match="size"):
        faces.faces_dir(10, size=15, cache_dir="/nonexistent")
    with pytest.raises(ValueError, match="count"):
        faces.faces_dir(0, cache_dir="/nonexistent")
    with pytest.raises(ValueError, match="index"):
        faces.render_face(-1)
    with pytest.raises(ValueError, match="size"):
        faces.render_face(0, size=513)
    assert not os.path.exists("/nonexistent")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GAN_ANIME_CACHE", str(tmp_path))
    assert faces.default_cache_dir() == str(tmp_path)
    assert faces.faces_dir(30, seed=0, size=64) == str(tmp_path / "faces-v1-64px-30-seed0")
    assert not os.listdir(tmp_path)   # faces_dir renders nothing
    monkeypatch.delenv("GAN_ANIME_CACHE")
    assert "gan_anime" in faces.default_cache_dir()
