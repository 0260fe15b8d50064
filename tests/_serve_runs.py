"""Trained runs shared by test_export.py, test_serve.py and test_browser.py, and headless Chromium.

Each run is trained once per test session into the session's cache (``cli_env["GAN_ANIME_CACHE"]``) and reused
by the next module that asks for it.
"""

import os
import shutil

import numpy as np
from PIL import Image

import gan_anime

#: About the smallest run whose blue hair the tag classifier recognises: ACGAN (its classifier heads teach the
#: tags fast), 16 px, width 16, 2,000 built-in faces, 10 epochs of batch 32 (625 steps, ~30 s on 2 cores).
#: Trials on 2 cores: 5 epochs: 58 of 64 faces asked for blue hair seen blue; 8 epochs: 15 of 16; 10 epochs:
#: 64 of 64.  A DCGAN of the same size needed 30 epochs for 61 of 64; 3 epochs of width 8: none.
CONDITIONAL = dict(gan="acgan", image_size=16, g_width=16, d_width=16, noise_dim=32, faces_count=2000, batch_size=32,
                   epochs=10)


def _finished(run_dir):
    return os.path.isfile(os.path.join(run_dir, "checkpoints", "checkpoint"))


def _train(run_dir, cfg):
    if not _finished(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        gan_anime.train(cfg)
    return run_dir


def conditional_run(cache_dir):
    """A conditional run on the built-in faces (12 hair, 10 eye colours) that draws recognisable hair colours."""
    run_dir = os.path.join(cache_dir, "serve-runs", "acgan16")
    fields = dict(CONDITIONAL)
    cfg = gan_anime.Config.for_gan(fields.pop("gan"), run_dir=run_dir, cache_dir=cache_dir, checkpoint_every=0,
                                   samples_per_grid=4, log_every=50, **fields)
    return _train(run_dir, cfg)


def unconditional_run(cache_dir):
    """A tiny run on 16 random images without tags (seed-only generation), upsampling by nearest neighbour + conv
    (the conditional run uses transposed convolutions): the exports are tested on both."""
    root = os.path.join(cache_dir, "serve-runs")
    data = os.path.join(root, "untagged")
    if not os.path.isdir(data):
        os.makedirs(data + ".tmp", exist_ok=True)
        rng = np.random.default_rng(5)
        for i in range(16):
            image = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
            image.save(os.path.join(data + ".tmp", f"{i}.png"))
        os.replace(data + ".tmp", data)
    run_dir = os.path.join(root, "untagged-run")
    cfg = gan_anime.Config(data_dir=data, image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=8, epochs=1,
                           upsample="nearest", run_dir=run_dir, cache_dir=cache_dir, checkpoint_every=0,
                           samples_per_grid=4)
    return _train(run_dir, cfg)


def chromium_paths():
    """(browser, chromedriver) paths, or None when either is missing."""
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def headless_chromium(width=1200, height=900):
    """A Selenium WebDriver for the system's Chromium (Debian: apt-get install chromium chromium-driver), headless."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)
