"""--export: a SavedModel and a TFLite file that draw generate()'s faces from seeds, loadable without gan_anime."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import gan_anime
from _serve_runs import conditional_run, unconditional_run
from gan_anime.serve import numpy_rng
from gan_anime.serve.ziggurat import ziggurat_tables
from gan_anime.serve.export import export

#: The TFLite file computes the noise in float32 (TFLite has no float64 arithmetic): pixels may differ by this.
TFLITE_TOLERANCE = 2
SEEDS = [0, 1, 7, 4242, 2 ** 32 - 1, 2 ** 32 + 5, 2 ** 62 + 11]
HAIR = ["blue", "", "red", "blonde", "", "aqua", "pink"]
EYE = ["red", "blue", "", "green", "", "yellow", "black"]

# Runs in a fresh `python -I` process that cannot import gan_anime: plain TensorFlow only.
LOADER = r'''
import importlib.abc, json, sys
class NoGanAnime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "gan_anime":
            raise ModuleNotFoundError("gan_anime is blocked in this process")
sys.meta_path.insert(0, NoGanAnime())
import numpy as np
import tensorflow as tf
kind, path, out, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
inputs = {"seed": np.array(args["seed"], np.int64)}
if "hair" in args:
    inputs.update(hair=np.array(args["hair"]), eye=np.array(args["eye"]))
if kind == "saved_model":
    fn = tf.saved_model.load(path).signatures["serving_default"]
    images = fn(**{k: tf.constant(v) for k, v in inputs.items()})["images"].numpy()
else:
    runner = tf.lite.Interpreter(model_path=path).get_signature_runner("serving_default")
    images = runner(**inputs)["images"]
np.save(out, images)
print(json.dumps({"gan_anime_loaded": any(m.split(".")[0] == "gan_anime" for m in sys.modules)}))
'''


@pytest.fixture(scope="module")
def conditional(cli_env, tmp_path_factory):
    run_dir = conditional_run(cli_env["GAN_ANIME_CACHE"])
    out = str(tmp_path_factory.mktemp("export"))
    return gan_anime.load(run_dir), export(run_dir, out), out


def fresh_process(kind, path, tmp_path, **args):
    """Load the export in `python -I` (no PYTHONPATH, no cwd on the path) with gan_anime blocked; its images."""
    script, out = tmp_path / "load_export.py", tmp_path / f"{kind}.npy"
    script.write_text(LOADER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GAN_ANIME_CACHE")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run([sys.executable, "-I", str(script), kind, path, str(out), json.dumps(args)],
                            cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"gan_anime_loaded": False}
    return np.load(out)


def expected(run, seeds, hair=None, eye=None):
    """generate(1, seed=s, hair=h, eye=e)[0] per seed ("" = the seed's own colour)."""
    rows = [run.generate(1, seed=s, **({} if hair is None else {"hair": hair[i] or None, "eye": eye[i] or None}))
            for i, s in enumerate(seeds)]
    return np.concatenate(rows)


def test_in_graph_noise_is_numpys():
    tables = ziggurat_tables()
    seeds = np.concatenate([np.arange(600), [2 ** 32 - 1, 2 ** 32, 2 ** 40 + 1, 2 ** 63 - 1]]).astype(np.int64)
    want = np.stack([np.random.default_rng([int(s), 0]).standard_normal(100) for s in seeds])
    f64 = tf.function(lambda s: numpy_rng.standard_normal(s, 0, 100, tables, tf.float64))(tf.constant(seeds)).numpy()
    f32 = tf.function(lambda s: numpy_rng.standard_normal(s, 0, 100, tables, tf.float32))(tf.constant(seeds)).numpy()
    np.testing.assert_array_equal(f64.astype(np.float32), want.astype(np.float32))
    # float64 differs only where TensorFlow's log and the C library's round a tail value differently (1 ulp)
    assert np.max(np.abs(f64 - want)) < 1e-14 and np.mean(f64 == want) > 0.9999
    np.testing.assert_allclose(f32, want, rtol=1e-6, atol=1e-6)
    for stream, k in ((1, 12), (2, 10), (1, 3)):
        got = tf.function(lambda s: numpy_rng.bounded_int(s, stream, k))(tf.constant(seeds)).numpy()
        np.testing.assert_array_equal(got, [np.random.default_rng([int(s), stream]).integers(0, k, size=1)[0]
                                            for s in seeds])


def test_files_and_assets(conditional):
    run, written, out = conditional
    assert written == {"saved_model": os.path.join(out, "saved_model"), "tflite": os.path.join(out, "faces.tflite")}
    for folder in (os.path.join(out, "saved_model", "assets"), out):
        with open(os.path.join(folder, "classes.json")) as f:
            classes = json.load(f)
        assert classes["hair_classes"] == list(run.hair_classes) and classes["eye_classes"] == list(run.eye_classes)
        assert classes["inputs"] == ["seed", "hair", "eye"] and classes["image_size"] == 16
        with open(os.path.join(folder, "config.json")) as f:
            assert json.load(f) == json.load(open(os.path.join(run.run_dir, "config.json")))
    assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


def test_saved_model_in_fresh_process_equals_generate(conditional, tmp_path):
    run, written, _ = conditional
    got = fresh_process("saved_model", written["saved_model"], tmp_path, seed=SEEDS, hair=HAIR, eye=EYE)
    np.testing.assert_array_equal(got, expected(run, SEEDS, HAIR, EYE))


def test_tflite_in_fresh_process_matches_generate(conditional, tmp_path):
    run, written, _ = conditional
    got = fresh_process("tflite", written["tflite"], tmp_path, seed=SEEDS, hair=HAIR, eye=EYE)
    want = expected(run, SEEDS, HAIR, EYE)
    diff = int(np.max(np.abs(got.astype(int) - want.astype(int))))
    print(f"TFLite vs generate: max abs pixel difference {diff}/255 over {len(SEEDS)} faces")
    assert got.shape == want.shape and got.dtype == np.uint8 and diff <= TFLITE_TOLERANCE


def test_bad_inputs_fail(conditional):
    _, written, _ = conditional
    fn = tf.saved_model.load(written["saved_model"]).signatures["serving_default"]
    runner = tf.lite.Interpreter(model_path=written["tflite"]).get_signature_runner("serving_default")
    cases = [([1], ["violet"], ["red"], "unknown hair colour"), ([1], ["blue"], ["Blue"], "unknown eye colour"),
             ([-3], ["blue"], ["red"], "seed must be >= 0"), ([1, 2], ["blue"], ["red"], "one entry per face")]
    for seed, hair, eye, message in cases:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            fn(seed=tf.constant(seed, tf.int64), hair=tf.constant(hair), eye=tf.constant(eye))
        with pytest.raises((RuntimeError, ValueError)):
            runner(seed=np.array(seed, np.int64), hair=np.array(hair), eye=np.array(eye))


def test_unconditional_export_takes_seeds_only(cli_env, tmp_path):
    run_dir = unconditional_run(cli_env["GAN_ANIME_CACHE"])
    written = export(run_dir, str(tmp_path / "out"))
    run = gan_anime.load(run_dir)
    seeds = [3, 0, 2 ** 33]
    model = tf.saved_model.load(written["saved_model"])
    assert list(model.signatures["serving_default"].structured_input_signature[1]) == ["seed"]
    np.testing.assert_array_equal(fresh_process("saved_model", written["saved_model"], tmp_path, seed=seeds),
                                  expected(run, seeds))
    got = fresh_process("tflite", written["tflite"], tmp_path, seed=seeds)
    assert np.max(np.abs(got.astype(int) - expected(run, seeds).astype(int))) <= TFLITE_TOLERANCE


def test_cli_export_prints_where(cli_env, run_cmd, tmp_path):
    run_dir = unconditional_run(cli_env["GAN_ANIME_CACHE"])
    out = tmp_path / "only-tflite"
    result = run_cmd(["ENTRY", "--export", "--run-dir", run_dir, "--format", "tflite", "--export-dir", out], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tflite: {out / 'faces.tflite'}"
    assert sorted(os.listdir(out)) == ["classes.json", "config.json", "faces.tflite"]
    bad = run_cmd(["ENTRY", "--export", "--run-dir", run_dir, "--format", "onnx"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == \
        "gan-anime: error: --format: expected one of saved_model|tflite|all"
