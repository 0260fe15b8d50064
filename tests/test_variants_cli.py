"""GAN variants on the command line: --gan acgan|wgan-gp|hinge, their flags, --load keeping the variant,
--inference --mode grids, and the AC/WG/HG TRAIN presets."""

import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, TINY, cli_error, printed_path, read_config
from gan_anime.cli import flags as cli_flags
from gan_anime.cli import main as cli_main

#: TINY without --faces-count, for runs on --data-dir.
TINY_DIR = [a for a in TINY if a not in ("--faces-count", "64")]
PRESETS = os.path.join(ROOT, "gan_anime", "cli", "presets.py")


def cli_ok(argv, capsys):
    """Run the command line in this process; it must succeed.  Its stdout."""
    rest = cli_flags.parse(["gan-anime", *argv])
    assert cli_main.main(["gan-anime", *rest]) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def untagged(tmp_path_factory):
    """20 random 16 px PNGs, no tags file."""
    folder = tmp_path_factory.mktemp("untagged") / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def acgan_run(run_cmd, tmp_path_factory):
    """--gan acgan, 1 epoch (8 steps) on 64 tagged built-in faces."""
    cwd = tmp_path_factory.mktemp("acgan")
    result = run_cmd(["ENTRY", "--train", "--gan", "acgan", *TINY, "--epochs", "1"], cwd)
    assert result.returncode == 0, result.stderr
    return cwd, os.path.join(cwd, printed_path(result.stdout, "run directory:"))


@pytest.fixture(scope="module")
def dcgan_untagged_run(run_cmd, untagged, tmp_path_factory):
    """The default (dcgan) variant, unconditional: 1 epoch on the untagged folder."""
    cwd = tmp_path_factory.mktemp("dcgan")
    result = run_cmd(["ENTRY", "--train", "--data-dir", untagged, *TINY_DIR, "--epochs", "1",
                      "--run-dir", "run"], cwd)
    assert result.returncode == 0, result.stderr
    return cwd, os.path.join(cwd, "run")


# ------------------------------------------------------------------------------ acgan end to end
def test_acgan_trains_on_builtin_faces_and_generates_chosen_tags(acgan_run, run_cmd):
    cwd, run_dir = acgan_run
    cfg = read_config(run_dir)
    assert cfg["gan"] == "acgan" and cfg["conditional"] is True
    assert os.path.isfile(os.path.join(run_dir, "samples", "epoch_0001.png"))
    result = run_cmd(["ENTRY", "--inference", "--run-dir", run_dir, "--inference-count", "8",
                      "--hair", "blue", "--eye", "red"], cwd)
    assert result.returncode == 0, result.stderr
    out = printed_path(result.stdout, "generated 8 faces:")
    assert sorted(os.listdir(out)) == [f"{i:04d}.png" for i in range(8)] + ["grid.png"]
    assert Image.open(os.path.join(out, "0000.png")).size == (16, 16)


def test_acgan_unknown_hair_colour_lists_the_valid_ones(acgan_run, capsys):
    code, err = cli_error(["--inference", "--run-dir", acgan_run[1], "--hair", "nosuchcolour"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("gan-anime: error: "), err
    assert "nosuchcolour" in err and "blonde" in err and "orange" in err, err


# mode -> (faces, at least this many face rows, face columns): 12 hair x 10 eye colours on the built-in faces.
MODES = {"fix-noise": (120, 12, 10), "fix-tags": (64, 8, 8), "change-hair": (96, 8, 12), "change-eye": (80, 8, 10)}


@pytest.mark.parametrize("mode", list(MODES))
def test_inference_mode_writes_one_labelled_grid(mode, acgan_run, capsys):
    _, run_dir = acgan_run
    faces, rows, cols = MODES[mode]
    path = printed_path(cli_ok(["--inference", "--run-dir", run_dir, "--mode", mode, "--seed", "4"], capsys),
                        f"{mode}: {faces} faces:")
    assert os.path.basename(path) == f"{mode}.png"
    assert re.fullmatch(r"\d{4}-seed4", os.path.basename(os.path.dirname(path)))
    assert os.path.dirname(os.path.dirname(path)) == os.path.join(run_dir, "generated")
    width, height = Image.open(path).size
    assert height > rows * 16 and width > cols * 16, (width, height)
    assert height < (rows + 6) * 18 + 60 and width < (cols + 6) * 18 + 120, (width, height)   # not more faces


def test_fix_noise_refuses_a_count(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli_error(["--inference", "--mode", "fix-noise", "--inference-count", "3"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("gan-anime: error: --inference-count: not used with --mode fix-noise"), err


# ------------------------------------------------------------------------------ untagged data
def test_acgan_on_untagged_folder_is_one_line_about_tags(untagged, run_cmd, tmp_path):
    result = run_cmd(["ENTRY", "--train", "--gan", "acgan", "--data-dir", untagged, *TINY_DIR, "--epochs", "1"],
                     tmp_path)
    err = result.stderr
    assert result.returncode == 2 and err.splitlines() == [err.strip()], err
    assert err.startswith("gan-anime: error: --gan: ") and "tags" in err and "Traceback" not in err, err
    assert not os.path.exists(tmp_path / "runs")


def test_unconditional_run_refuses_tags_and_modes(dcgan_untagged_run, capsys):
    _, run_dir = dcgan_untagged_run
    cfg = read_config(run_dir)
    assert cfg["gan"] == "dcgan" and cfg["conditional"] is False
    for argv, words in ((["--hair", "blue"], ("tags",)), (["--mode", "change-hair"], ("change-hair", "tags"))):
        code, err = cli_error(["--inference", "--run-dir", run_dir, *argv], capsys)
        assert code == 2 and err.count("\n") == 1 and err.startswith("gan-anime: error: "), err
        assert all(w in err for w in words), err
    generated = os.path.join(run_dir, "generated")
    assert not os.path.isdir(generated) or not os.listdir(generated)   # no empty output folder left behind


# ------------------------------------------------------------------------------ --load keeps the variant
def test_load_refuses_another_gan_and_accepts_the_same(dcgan_untagged_run, run_cmd, capsys):
    cwd, run_dir = dcgan_untagged_run
    code, err = cli_error(["--load", "--run-dir", run_dir, "--gan", "wgan-gp", "--epochs", "1"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("gan-anime: error: --gan: "), err
    assert "dcgan" in err and "wgan-gp" in err, err
    assert read_config(run_dir)["epochs"] == 1
    same = run_cmd(["ENTRY", "--load", "--run-dir", run_dir, "--gan", "dcgan", "--epochs", "1",
                    "--max-steps", "3"], cwd)
    assert same.returncode == 0, same.stderr
    cfg = read_config(run_dir)
    assert (cfg["gan"], cfg["epochs"]) == ("dcgan", 2)
    assert "step 3" in same.stdout, same.stdout


# ------------------------------------------------------------------------------ variant defaults and flags
def test_wgan_gp_trains_with_its_defaults(run_cmd, tmp_path):
    result = run_cmd(["ENTRY", "--train", "--gan", "wgan-gp", *TINY, "--epochs", "2", "--max-steps", "2",
                      "--run-dir", "r"], tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = read_config(tmp_path / "r")
    assert (cfg["gan"], cfg["loss"], cfg["n_critic"], cfg["beta1"], cfg["beta2"]) == ("wgan-gp", "wasserstein",
                                                                                        5, 0.0, 0.9)
    assert cfg["g_schedule"]["initial_lr"] == cfg["d_schedule"]["initial_lr"] == 1e-4
    assert (cfg["d_norm"], cfg["mbstd_group"], cfg["r1_gamma"]) == ("none", 0, 0.0)
    assert "step 2" in result.stdout, result.stdout


@pytest.mark.parametrize("argv, expected", ids=["n-critic", "gp-weight+lr", "diffaugment"], argvalues=[
    (["--n-critic", "2"], dict(n_critic=2, beta1=0.0, beta2=0.9)),
    (["--gp-weight", "5", "--learning-rate", "3e-4"], dict(n_critic=5, gp_weight=5.0)),
    (["--diffaugment", "color,cutout"], dict(n_critic=5, diffaugment="color,cutout")),
])
def test_user_flags_win_over_variant_defaults(argv, expected, tmp_path):
    cli_flags.parse(["gan-anime", "--train", "--gan", "wgan-gp", *TINY, "--run-dir", str(tmp_path / "r"), *argv])
    cfg = cli_main.train_config()
    assert cfg.gan == "wgan-gp"
    assert {k: getattr(cfg, k) for k in expected} == expected
    if "--learning-rate" in argv:
        assert cfg.g_schedule.initial_lr == cfg.d_schedule.initial_lr == 3e-4


def test_hinge_and_acgan_flags_reach_the_config(tmp_path):
    cli_flags.parse(["gan-anime", "--train", "--gan", "hinge", *TINY, "--run-dir", str(tmp_path / "h")])
    assert (cli_main.train_config().loss, cli_main.train_config().n_critic) == ("hinge", 1)
    cli_flags.parse(["gan-anime", "--train", "--gan", "acgan", "--aux-weight", "0.5", *TINY,
                     "--run-dir", str(tmp_path / "a")])
    assert cli_main.train_config().aux_weight == 0.5


MISTAKES = [   # (argv, start of the error after 'gan-anime: error: ', words the line must contain)
    (["--train", "--gan", "wgan-gp", "--d-norm", "batch"], "--gan: ", ("d_norm", "none")),
    (["--train", "--gan", "nosuch"], "--gan: ", ("dcgan", "acgan", "wgan-gp", "hinge")),
    (["--train", "--diffaugment", "color,bogus"], "--diffaugment: ", ("bogus", "color", "translation", "cutout")),
    (["--train", "--diffaugment", "color,color"], "--diffaugment: ", ("more than once",)),
    (["--train", "--n-critic", "0"], "--n-critic: ", ()),
    (["--inference", "--mode", "sideways"], "--mode: ", ("fix-noise", "change-eye")),
    (["--inference", "--gan", "acgan"], "--gan: not used by --inference", ()),
]


@pytest.mark.parametrize("argv, start, words", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_variant_flag_mistakes_are_one_line(argv, start, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli_error([*argv, *TINY] if argv[0] == "--train" else argv, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"gan-anime: error: {start}"), err
    for word in words:
        assert word in err, (word, err)
    assert not os.path.exists(tmp_path / "runs")


# ------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("preset, gan", [("AC,1", "acgan"), ("WG,2", "wgan-gp"), ("HG,3", "hinge")])
def test_variant_presets_add_the_gan_flag(preset, gan, run_cmd, tmp_path):
    result = run_cmd([sys.executable, PRESETS, "args", preset], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "--train" and lines[lines.index("--gan") + 1] == gan
    assert lines[lines.index("--image-size") + 1] == "64"   # the S sizes
    assert lines[lines.index("--epochs") + 1] == {"1": "6", "2": "16", "3": "32"}[preset[-1]]


def test_presets_table_lists_the_variant_presets(run_cmd, tmp_path):
    result = run_cmd([sys.executable, PRESETS, "table"], tmp_path)
    assert result.returncode == 0, result.stderr
    for preset in ("AC,1", "WG,1", "HG,1", "AC,3"):
        assert re.search(rf"^  {re.escape(preset)} ", result.stdout, re.M), preset
    assert "--gan acgan" in result.stdout and "--gan wgan-gp" in result.stdout and "--gan hinge" in result.stdout


# ------------------------------------------------------------------------------ silently ignored flags
# The CLI refuses flags a routine would ignore ("--inference-count: not used with --mode fix-noise").
@pytest.mark.parametrize("mode, flag", [("change-hair", "--hair"), ("change-eye", "--eye")])
def test_mode_refuses_a_colour_for_the_tag_it_changes(mode, flag, acgan_run, capsys):
    code, err = cli_error(["--inference", "--run-dir", acgan_run[1], "--mode", mode, flag, "blue"], capsys)
    assert code == 2 and err.startswith(f"gan-anime: error: {flag}: "), err


@pytest.mark.parametrize("argv, flag", [(["--gp-weight", "5"], "--gp-weight"),   # dcgan: no gradient penalty
                                        (["--gan", "hinge", "--aux-weight", "2"], "--aux-weight")])   # acgan only
def test_train_refuses_a_weight_its_variant_does_not_use(argv, flag, tmp_path):
    cli_flags.parse(["gan-anime", "--train", *TINY, *argv, "--run-dir", str(tmp_path / "r")])
    with pytest.raises(cli_flags.UsageError, match=f"^{flag}: "):
        cli_main.train_config()   # the config only: nothing trains
