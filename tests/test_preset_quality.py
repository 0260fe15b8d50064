"""benchmarks/preset_quality.py: one run of a preset's level 3, measured where levels 1, 2 and 3 end."""

import json
import os
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "gan_anime", "cli"))
import presets  # noqa: E402

# Checkpoints inside epochs too (every 20 steps, 3 kept): the levels' own checkpoints rotate away from
# checkpoints/ long before they are measured, as they do in a real S run.
TINY = ("--image-size 16 --width 4 --faces-count 64 --batch-size 8 --noise-vector 8 --checkpoint-every 20 "
        "--deterministic")


def test_one_run_measured_at_each_level(tmp_path, cli_env):
    out, media = tmp_path / "presets", tmp_path / "media"
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "preset_quality.py"), "--preset", "S", "--samples",
            "16", "--heldout", "24", "--out", str(out), "--media", str(media), "--flags", TINY, "--keep-epochs", "50",
            "--averages", "0.999,0.9999/5"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=cli_env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())
    averages = [f"S,{k} EMA {a}" for a in ("0.999", "0.9999/5") for k in (1, 2, 3)]
    assert [r["preset"] for r in rows] == ["S,1", "S,2", "S,3"] + averages
    # The extra averages, kept beside the run's own: 0.999 is still inside the warm-up it shares with the run's
    # 0.9999 at these few steps, so it is the same generator; a warm-up of 5 (a longer average) is another.
    # The copy of the run's own rule they keep matches the run's average exactly at every level.
    by_name, rows = {r["preset"]: r for r in rows}, rows[:3]
    for k in (1, 2, 3):
        assert by_name[f"S,{k} EMA 0.999"]["fid"] == by_name[f"S,{k}"]["fid"]
        assert by_name[f"S,{k} EMA 0.999"]["step"] == by_name[f"S,{k}"]["step"]
    assert all(by_name[f"S,{k} EMA 0.9999/5"]["fid"] != by_name[f"S,{k}"]["fid"] for k in (2, 3))
    checks = sorted((out / "levels" / "averages" / "state").glob("check-*.json"))
    assert [json.loads(c.read_text())["max_diff"] for c in checks] == [0.0, 0.0, 0.0]
    epochs = presets.BASES["S"][2]
    assert [r["epochs"] for r in rows] == list(epochs)
    assert [r["step"] for r in rows] == [e * 64 // 8 for e in epochs]    # 8 steps an epoch
    assert rows[0]["minutes"] < rows[1]["minutes"] < rows[2]["minutes"]
    first = f"ckpt-{rows[0]['step']}.index"      # rotated out of the run's checkpoints, kept in levels/
    assert not (out / "S3" / "checkpoints" / first).exists() and (out / "levels" / first).exists()
    for r in rows:
        assert r["fid"] > 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and r["hair"] is not None
        assert r["reference"] == "built-in held-out (24 images)" and os.path.isfile(r["grid"])
    # Every level's checkpoint was kept and measured: the three grids differ.
    grids = [(media / f"samples_cpu_S{k}.png").read_bytes() for k in (1, 2, 3)]
    assert len(set(grids)) == 3
    assert "| `S,3` |" in (out / "table.md").read_text()
    assert (media / "fid_vs_minutes_S.png").stat().st_size > 1000
    # Run again: training and measuring are done (no new steps in the run's log, the same numbers).
    log = out / "S3" / "logs" / "losses.csv"
    lines = log.read_text().count("\n")
    again = subprocess.run(argv, capture_output=True, text=True, env=cli_env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert log.read_text().count("\n") == lines
    assert json.loads((out / "results.json").read_text())[:3] == rows
    # Level 1 trained on its own (TRAIN S,1 with the same flags) is the start of the level-3 run.
    import numpy as np
    from PIL import Image
    alone = tmp_path / "alone"
    train = subprocess.run([os.path.join(ROOT, "scripts", "train.sh"), "S,1", *TINY.split(),
                            "--run-dir", str(alone), "--generate-after", "0"], capture_output=True, text=True,
                           env=cli_env, cwd=tmp_path, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    inf = subprocess.run([sys.executable, "-m", "gan_anime", "--inference", "--run-dir", str(alone), "--seed", "1",
                          "--inference-count", "64"], capture_output=True, text=True, env=cli_env, cwd=tmp_path,
                         timeout=300)
    assert inf.returncode == 0, inf.stderr[-3000:]
    own = np.asarray(Image.open(alone / "generated" / "0001-seed1" / "grid.png"), np.float32)
    levels = [np.asarray(Image.open(media / f"samples_cpu_S{k}.png"), np.float32) for k in (1, 2)]
    same, other = (float(np.abs(own - g).mean()) for g in levels)
    assert same < 2.0 and other > 3 * max(same, 0.5), (same, other)
    # Branches from epoch 50 with both learning rates times 1 and times 0.5: times 1 is the same run (a resume
    # is exact), so its checkpoint is S,3's, measured the same; times 0.5 is another.
    tails = subprocess.run(argv + ["--tail-from", "50", "--tail-scales", "1,0.5", "--truncations", "0.5"],
                           capture_output=True, text=True, env=cli_env, timeout=600)
    assert tails.returncode == 0, tails.stderr[-3000:]
    rows = {r["preset"]: r for r in json.loads((out / "results.json").read_text())}
    same, half = rows["S,3 lr x1 from epoch 50"], rows["S,3 lr x0.5 from epoch 50"]
    assert same["step"] == half["step"] == rows["S,3"]["step"]
    assert (same["fid"], same["kid"]) == (rows["S,3"]["fid"], rows["S,3"]["kid"])
    assert half["fid"] != same["fid"] and same["minutes"] > rows["S,2"]["minutes"]
    tame = rows["S,3 truncation 0.5"]     # the same checkpoint, faces drawn nearer the average one
    assert tame["step"] == rows["S,3"]["step"] and tame["fid"] != rows["S,3"]["fid"]
    assert (media / "samples_cpu_S3_trunc0.5.png").read_bytes() != (media / "samples_cpu_S3.png").read_bytes()
    lr = [line.split(",") for line in (out / "tail-50-x0.5" / "logs" / "losses.csv").read_text().splitlines()]
    col = lr[0].index("lr_g")
    assert lr[1:] and all(abs(float(r[col]) - 1e-4) < 1e-9 for r in lr[1:]), "the branch trains at half the rate"
    # Averages the run did not keep cannot be measured afterwards; a wrong one is refused before any work.
    bad = subprocess.run(argv + ["--averages", "0.99"], capture_output=True, text=True, env=cli_env, timeout=300)
    assert bad.returncode == 2 and "--averages: " in bad.stderr and "give a new --out" in bad.stderr, bad.stderr
    bad = subprocess.run(argv[:2] + ["--averages", "0.999,1.5/3"], capture_output=True, text=True, env=cli_env,
                         timeout=60)
    assert bad.returncode == 2 and ("--averages: each DECAY must be in (0, 1) and W above 1, got '0.999,1.5/3'"
                                    in bad.stderr), bad.stderr
    bad = subprocess.run(argv + ["--tail-from", "40", "--tail-scales", "0.5"], capture_output=True, text=True,
                         env=cli_env, timeout=300)
    assert bad.returncode == 2 and "kept no checkpoint of epoch 40" in bad.stderr, bad.stderr[-2000:]
    bad = subprocess.run(argv[:2] + ["--tail-from", "56", "--tail-scales", "0.5"], capture_output=True, text=True,
                         env=cli_env, timeout=120)
    assert bad.returncode == 2 and "--tail-from: expected an epoch before the last level's end (56)" in bad.stderr
    bad = subprocess.run(argv[:2] + ["--tail-scales", "0.5"], capture_output=True, text=True, env=cli_env, timeout=60)
    assert bad.returncode == 2 and "--tail-from and --tail-scales go together" in bad.stderr
    bad = subprocess.run(argv[:2] + ["--truncations", "1,0"], capture_output=True, text=True, env=cli_env, timeout=60)
    assert bad.returncode == 2 and "--truncations: each must be a positive number" in bad.stderr
    bad = subprocess.run(argv[:2] + ["--preset", "Q"], capture_output=True, text=True, env=cli_env, timeout=60)
    assert bad.returncode == 2 and "--preset: expected one of S, M, L" in bad.stderr
    bad = subprocess.run(argv[:2] + ["--flags", "--max-steps 5"], capture_output=True, text=True, env=cli_env,
                         timeout=60)
    assert bad.returncode == 2 and "--flags: --max-steps cannot be given" in bad.stderr, bad.stderr
    bad = subprocess.run(argv[:2] + ["--flags", "--hair blonde"], capture_output=True, text=True, env=cli_env,
                         timeout=120)
    assert bad.returncode == 2 and "--hair: not used by --train" in bad.stderr, bad.stderr
