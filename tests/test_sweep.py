"""benchmarks/sweep.py: same-budget ablation runs, measured at evenly spaced moments, reported as a table."""

import json
import os
import subprocess
import sys

from conftest import ROOT

TINY_BASE = {"image_size": 16, "g_width": 4, "d_width": 4, "noise_dim": 8, "batch_size": 8, "faces_count": 64}


def test_sweep_trains_measures_and_reports(tmp_path, cli_env):
    out = tmp_path / "sweep"
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "sweep.py"), "--only", "baseline", "--minutes", "0.2",
            "--points", "2", "--samples", "16", "--heldout", "24", "--out", str(out), "--base", json.dumps(TINY_BASE)]
    leftover = out / "baseline" / "checkpoints" / "from-a-stopped-sweep"   # resuming it would overrun the budget
    leftover.parent.mkdir(parents=True)
    leftover.write_text("x")
    proc = subprocess.run(argv, capture_output=True, text=True, env=cli_env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "holds an unfinished run (stopped or failed); it is started over" in proc.stdout and not leftover.exists()
    (result,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert result["name"] == "baseline" and len(result["curve"]) == 2
    first, last = result["curve"]
    assert 0.1 - 0.02 <= first["minutes"] < last["minutes"] and first["step"] < last["step"] == result["step"]
    assert last["minutes"] >= 0.2 and 0 < result["fid"] and result["hair"] is not None
    assert os.path.isdir(out / "baseline" / "sweep_points")
    table = (out / "table.md").read_text()
    assert "| `baseline` |" in table and f"| {result['fid']:.1f} |" in table
    assert (out / "table.csv").read_text().splitlines()[1].startswith("baseline,dcgan,")
    assert (out / "fid_vs_minutes.png").stat().st_size > 1000
    again = subprocess.run(argv, capture_output=True, text=True, env=cli_env, timeout=300)
    assert again.returncode == 0 and "baseline: already in" in again.stdout, again.stdout + again.stderr[-2000:]
    bad = subprocess.run(argv[:2] + ["--only", "nosuch"], capture_output=True, text=True, env=cli_env, timeout=60)
    assert bad.returncode == 2 and "unknown configuration(s) nosuch" in bad.stderr


def test_moments_and_settings_of_an_earlier_sweep(tmp_path, cli_env):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import sweep
    assert sweep.keep_moments(10, 4) == [2.5, 5.0, 7.5] and sweep.keep_moments(45, 1) == []
    assert sweep.keep_moments(45, 4, at=[20, 10]) == [10.0, 20.0]
    # results.jsonl of another budget is not mixed with this one's.
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "results.jsonl").write_text(json.dumps({"name": "baseline", "settings": {"minutes": 99}}) + "\n")
    script = os.path.join(ROOT, "benchmarks", "sweep.py")
    proc = subprocess.run([sys.executable, script, "--only", "baseline", "--out", str(out)], capture_output=True,
                          text=True, env=cli_env, timeout=60)
    assert proc.returncode == 2 and "holds results measured with other settings (baseline)" in proc.stderr
    for at in ("5,3", "x", "0", "10"):
        proc = subprocess.run([sys.executable, script, "--minutes", "10", "--at", at, "--out", str(tmp_path / "o")],
                              capture_output=True, text=True, env=cli_env, timeout=60)
        assert proc.returncode == 2 and "--at: expected" in proc.stderr, (at, proc.stderr)


def test_a_configuration_stopped_by_a_signal_is_not_measured(tmp_path, cli_env):
    """SIGTERM ends training early with a checkpoint; the sweep's child must then say so and exit 1 instead of
    measuring a run that had less than its budget."""
    import signal
    import time
    spec = dict(name="baseline", base=TINY_BASE, minutes=5.0, points=1, at=[], samples=16, heldout=24,
                out=str(tmp_path / "sweep"), seed=0, cache_dir=cli_env["GAN_ANIME_CACHE"])
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "benchmarks", "sweep.py"), "--run-one",
                             json.dumps(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env)
    losses = tmp_path / "sweep" / "baseline" / "logs" / "losses.csv"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:   # until it has trained a few steps
        if losses.exists() and len(losses.read_text().splitlines()) > 3:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr[-3000:]
    assert "baseline: stopped by SIGTERM after 0." in stderr and "of its 5 minutes, so not measured" in stderr
    assert stdout.strip() == "" or "fid" not in stdout.splitlines()[-1]


def test_every_configuration_is_a_valid_config_that_differs_from_the_baseline():
    """Each configuration --list offers builds a Config the library accepts, and changes the baseline (but g-deep,
    kept for the depth sweep's table: g_depth 2 is the default since)."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import sweep
    from gan_anime.config import Config, validate
    baseline = validate(Config.for_gan("dcgan", **sweep.BASE))
    for name, (what, gan, fields) in sweep.CONFIGS.items():
        cfg = validate(Config.for_gan(gan, **{**sweep.BASE, **fields}))
        assert what and (cfg == baseline) == (name in ("baseline", "g-deep")), name


def test_d_memorisation_scores_training_and_held_out_faces_at_each_checkpoint(tmp_path, cli_env):
    """benchmarks/d_memorisation.py restores each checkpoint's discriminator: the untrained ckpt-0 and the trained
    last one must score differently, and both face sets are scored."""
    import glob
    import gan_anime
    from gan_anime.config import Config
    cache = cli_env["GAN_ANIME_CACHE"]
    cfg = Config(**TINY_BASE, epochs=2, run_dir=str(tmp_path / "run"), cache_dir=cache, checkpoint_every=0,
                 samples_per_grid=4, keep_checkpoints=5)
    gan_anime.train(cfg, progress="lines")
    ckpts = sorted(glob.glob(str(tmp_path / "run" / "checkpoints" / "ckpt-*.index")),
                   key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
    first, last = ckpts[0][:-len(".index")], ckpts[-1][:-len(".index")]
    assert first.endswith("ckpt-0")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "d_memorisation.py"), cfg.run_dir,
                           first, last, "--count", "24", "--cache-dir", cache],
                          capture_output=True, text=True, env=cli_env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["checkpoint"] for r in rows] == [first, last]
    for r in rows:
        for kind in ("train", "heldout"):
            assert 0.0 < r[kind]["d"] < 1.0
    assert rows[0]["train"] != rows[1]["train"] and rows[0]["heldout"] != rows[1]["heldout"]
