"""benchmarks/make_folder.py: a deterministic folder of non-square PNG/JPEG busts in another style, with broken files."""

import os
import re
import subprocess
import sys

from PIL import Image, ImageFile

from conftest import ROOT
from gan_anime.data.folder import list_images, load_image

SCRIPT = os.path.join(ROOT, "benchmarks", "make_folder.py")


def make(out, *args):
    argv = [sys.executable, SCRIPT, "--out", str(out), "--workers", "1", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def files(root):
    """{relative path: bytes} of every file under root except README.txt."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root)
            if rel != "README.txt":
                with open(os.path.join(d, n), "rb") as f:
                    out[rel] = f.read()
    return out


def decode(path):
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.load()
            return im.format, im.size
    except Exception:  # noqa: BLE001 - any failure means "broken"
        return None


def test_folder_has_non_square_png_and_jpeg_broken_files_and_is_deterministic(tmp_path):
    proc = make(tmp_path / "a", "--count", 12, "--broken", 4, "--seed", 0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    readme = (tmp_path / "a" / "README.txt").read_text()
    assert "open-peeps" in readme and "Pablo Stanley" in readme and "CC0 1.0" in readme and "seed:     0" in readme
    broken = dict(re.findall(r"^\s+(\S+)\s+\((\S+)\)$", readme, re.M))
    assert sorted(broken.values()) == ["empty-png", "garbage-png", "text-as-jpg", "truncated-jpeg"]

    got = files(tmp_path / "a")
    assert len(got) == 16 and set(broken) < set(got)
    assert any(os.sep in p for p in got)   # nested subfolders
    decoded = {p: decode(tmp_path / "a" / p) for p in got}
    assert {p for p, d in decoded.items() if d is None} == set(broken)
    good = {p: d for p, d in decoded.items() if d is not None}
    assert len(good) == 12
    assert {fmt for fmt, _ in good.values()} == {"PNG", "JPEG"}
    assert all(p.endswith(".png") == (fmt == "PNG") for p, (fmt, _) in good.items())
    assert sum(w != h for _, (w, h) in good.values()) >= 6
    assert all(0.75 <= w / h <= 1.5 and 64 <= w <= 160 and 64 <= h <= 128 for _, (w, h) in good.values())
    # The trainer's own loader scans the same 16 files and rejects exactly the broken ones.
    assert sorted(list_images(str(tmp_path / "a"))) == sorted(got)
    assert {p for p in got if load_image(got[p], 32) is None} == set(broken)

    proc = make(tmp_path / "b", "--count", 12, "--broken", 4, "--seed", 0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert files(tmp_path / "b") == got
    proc = make(tmp_path / "c", "--count", 12, "--broken", 0, "--seed", 1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    other = files(tmp_path / "c")
    assert len(other) == 12
    png = next(p for p in good if p.endswith(".png"))
    index = os.path.splitext(png)[0]
    (same_index,) = [p for p in other if os.path.splitext(p)[0] == index]
    assert other[same_index] != got[png]
    assert all(other[p] != got.get(p) for p in other)


def test_bad_arguments_exit_2(tmp_path):
    for args, message in [(("--count", 0), "--count: must be >= 1"), (("--broken", -1), "--broken: must be >= 0"),
                          (("--count", "many"), "expected an integer")]:
        proc = make(tmp_path / "x", *args)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.png").write_bytes(b"x")
    proc = make(tmp_path / "full", "--count", 1)
    assert proc.returncode == 2 and "not an empty folder" in proc.stderr
    assert not (tmp_path / "x").exists()
