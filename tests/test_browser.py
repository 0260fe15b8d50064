"""The page in headless Chromium: pick blue hair, click Generate; the faces appear, and the tag classifier sees
blue hair on them.  Skipped only where Chromium or its driver is missing (scripts/init.sh --dev installs both
as root on Debian/Ubuntu: apt-get install chromium chromium-driver)."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

import gan_anime
from _serve_runs import chromium_paths, conditional_run, headless_chromium
from gan_anime.data import load_data
from gan_anime.metrics import tags
from gan_anime.serve.server import background

pytestmark = pytest.mark.skipif(chromium_paths() is None, reason="Chromium and chromedriver are not installed "
                                "(apt-get install chromium chromium-driver; scripts/init.sh --dev does it as root)")

SEED, COUNT = 21, 16
#: The classifier must see blue hair on at least this share of the faces asked for blue hair.
BLUE_SHARE = 0.75
#: Tag classifier training steps: 400 reach 100% held-out hair accuracy on 16 px faces (~5 s).
CLASSIFIER_STEPS = 400


@pytest.fixture(scope="module")
def run(cli_env):
    return gan_anime.load(conditional_run(cli_env["GAN_ANIME_CACHE"]))


@pytest.fixture(scope="module")
def classifier(run, cli_env):
    data, _ = load_data(run.config)
    clf = tags.get_tag_classifier(data, cli_env["GAN_ANIME_CACHE"], steps=CLASSIFIER_STEPS)
    assert clf.heldout["hair"]["accuracy"] >= 0.95, clf.heldout["hair"]
    return clf


def page_images(driver):
    """The faces on the page, decoded from their data: URLs: uint8 [N, S, S, 3]."""
    sources = driver.execute_script("return Array.from(document.querySelectorAll('#faces img'), i => i.src)")
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).convert("RGB"))
                     for s in sources])


def test_blue_hair_from_the_page(run, classifier):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with background(run) as url:
        driver = headless_chromium()
        try:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.find_element(By.ID, "faces").get_attribute("data-state") == "done")
            Select(driver.find_element(By.ID, "hair")).select_by_visible_text("blue")
            seed = driver.find_element(By.ID, "seed")
            seed.clear()
            seed.send_keys(str(SEED))
            driver.find_element(By.ID, "generate").click()
            wait.until(lambda d: "hair=blue" in d.find_element(By.ID, "download").get_attribute("href")
                       and d.find_element(By.ID, "faces").get_attribute("data-state") == "done")
            shown = driver.execute_script("return Array.from(document.querySelectorAll('#faces img'))"
                                          ".filter(i => i.complete && i.naturalWidth > 0).length")
            images = page_images(driver)
            assert driver.find_element(By.ID, "error").text == ""
        finally:
            driver.quit()
    assert shown == COUNT and images.shape == (COUNT, 16, 16, 3)
    np.testing.assert_array_equal(images, run.generate(COUNT, seed=SEED, hair="blue"))
    hair, _ = classifier.predict(images)
    blue = float(np.mean(hair == list(classifier.hair_classes).index("blue")))
    print(f"tag classifier sees blue hair on {blue:.0%} of the {COUNT} faces shown")
    assert blue >= BLUE_SHARE, [classifier.hair_classes[h] for h in hair]
