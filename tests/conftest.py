"""Shared fixtures: the repository root and a way to run the real command line as a subprocess."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: A model small enough that a subprocess trains it in seconds: 16 px, width 8, 64 built-in faces.
TINY = ["--image-size", "16", "--width", "8", "--faces-count", "64", "--batch-size", "8", "--log-every", "1"]


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory):
    """Environment for subprocesses: this checkout's code and Python, a session-wide faces cache
    (so the built-in faces render once), no TensorFlow C++ INFO/WARNING lines."""
    env = dict(os.environ)
    env.update(PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""), GAN_ANIME_PYTHON=sys.executable,
               GAN_ANIME_CACHE=str(tmp_path_factory.mktemp("faces_cache")), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("GAN_ANIME_DEBUG", None)
    return env


@pytest.fixture(scope="session")
def run_cmd(cli_env):
    """run_cmd(argv, cwd, **kw) -> CompletedProcess with text stdout/stderr.

    argv[0] may be 'ENTRY' (python -m gan_anime) or a script name under scripts/ ('train.sh', ...).
    """
    def run(argv, cwd, timeout=300, env=None):
        return subprocess.run(expand(argv), cwd=str(cwd), env=env or cli_env, capture_output=True, text=True,
                              timeout=timeout)
    return run


def expand(argv):
    head, rest = argv[0], list(map(str, argv[1:]))
    if head == "ENTRY":
        return [sys.executable, "-m", "gan_anime"] + rest
    if head.endswith(".sh"):
        return ["bash", os.path.join(ROOT, "scripts", head)] + rest
    return [head] + rest


def read_config(run_dir):
    """A run's config.json as a dict."""
    with open(os.path.join(run_dir, "config.json")) as f:
        return json.load(f)


def printed_path(stdout, prefix):
    """The path on the stdout line starting with ``prefix`` (e.g. 'run directory:')."""
    line = next(l for l in stdout.splitlines() if l.startswith(prefix))
    return line[len(prefix):].strip().split(" ")[0].rstrip("/")


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory):
    """40 small PNGs (24x20: two flat colours each): 5 steps per epoch at batch 8.  Tests only read it."""
    import numpy as np
    from PIL import Image
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    for i in range(40):
        a = np.full((24, 20, 3), rng.integers(0, 255, 3), np.uint8)
        a[4:14, 5:15] = rng.integers(0, 255, 3)
        Image.fromarray(a).save(d / f"{i:02d}.png")
    return str(d)


def tiny_config(run_dir, image_dir, epochs=3, **kw):
    """A Config for a 16 px model (width 4, noise 8, batch 8) on ``image_dir``, caches beside the run."""
    from gan_anime.config import Config
    base = dict(data_dir=image_dir, image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=8, epochs=epochs,
                run_dir=str(run_dir), cache_dir=str(run_dir) + "_cache", checkpoint_every=0, samples_per_grid=4,
                log_every=1)
    base.update(kw)
    return Config(**base)


def cli_error(argv, capsys):
    """Run the command line in this process up to its first error: (exit code, stderr)."""
    import logging
    from gan_anime.cli import flags as cli_flags
    from gan_anime.cli import main as cli_main
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level        # parsing applies absl's --verbosity to its logger: put it back after
    try:
        with pytest.raises(SystemExit) as exit_info:
            try:
                rest = cli_flags.parse(["gan-anime", *argv])
            except cli_flags.UsageError as e:
                cli_flags.fail(str(e))
            cli_main.main(["gan-anime", *rest])
    finally:
        absl_logger.setLevel(level)
    return exit_info.value.code, capsys.readouterr().err
