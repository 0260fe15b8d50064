"""A large folder is held in memory about once: decoded into one array, shared with the training
pipeline (measured 1.0-1.1 copies of 11.7 MB; the loader before kept a filtered copy, a tensor copy
and tf.data's copy on top, 4.4 copies, and fails this test)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

COUNT, SIZE = 4000, 32
#: Fixed cost beyond the decoded array: a few MB measured (allocator slack, the decode pool's buffers).
ALLOWANCE_MB = 8

SCRIPT = r"""
import json, sys
from gan_anime.data.folder import load_folder
from gan_anime.data.pipeline import DataTensors, make_dataset

def status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith(field + ":"))

def load(folder, cache):
    data = load_folder(folder, SIZE, cache_dir=cache)
    tensors = DataTensors.from_images(data)
    for _ in make_dataset(tensors, seed=0, start_step=0, end_step=3, global_batch=8, noise_dim=4, augment=True):
        pass
    return data, tensors

warm, folder, cache = sys.argv[1], sys.argv[2], (None if sys.argv[3] == "-" else sys.argv[3])
load(warm, cache)                      # one-time costs first: TensorFlow's runtime, tf.data, the pools
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                       # VmHWM := VmRSS, so the peak below is this load's
before = status_mb("VmRSS")
data, tensors = load(folder, cache)
print(json.dumps({"growth_mb": status_mb("VmHWM") - before, "copy_mb": data.images.nbytes / 2 ** 20,
                  "images": len(data), "skipped": data.skipped}))
""".replace("SIZE", str(SIZE))


def _folder(path, count, seed):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path / f"{i:05d}.png")
    (path / "broken.png").write_bytes(b"not an image")   # one skipped file: the compaction runs too
    return str(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    return _folder(root / "warm", 16, 1), _folder(root / "big", COUNT, 0), root


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs")
@pytest.mark.parametrize("cached", [True, False], ids=["memory-mapped cache", "no cache"])
def test_loading_holds_about_one_decoded_copy(folders, cached, cli_env):
    warm, big, root = folders
    cache = str(root / "cache") if cached else "-"
    out = subprocess.run([sys.executable, "-c", SCRIPT, warm, big, cache], env=cli_env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert (m["images"], m["skipped"]) == (COUNT, 1)
    copy = m["copy_mb"]
    assert copy == pytest.approx(COUNT * SIZE * SIZE * 3 / 2 ** 20)
    # About one copy: the old loader's three (decoded, filtered, tensor; 4 with tf.data's) cannot pass.
    assert m["growth_mb"] < 1.5 * copy + ALLOWANCE_MB, m
