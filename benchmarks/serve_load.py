"""The web app of ``--serve`` under a small load, on 127.0.0.1 only.

    .venv/bin/python benchmarks/serve_load.py --run-dir runs/presets-S-bf16/S3 [--requests 40] [--threads 4]
        [--count 16] [--max-seconds 120] [--screenshot media/web_page.png]

Starts the app on a free port of 127.0.0.1 (the run loaded once), then measures
* the latency of one request for ``--count`` faces (``/api/faces`` PNG grid): the median of 10 after a warm-up,
* ``--requests`` such requests (different seeds) sent by ``--threads`` threads: requests/s and faces/s,
  stopping early once ``--max-seconds`` have passed.
Prints one JSON line, with the CPU's model name and core count.  ``--screenshot FILE``: also a headless
Chromium screenshot of the page with blue hair picked and Generate clicked (needs chromium, chromedriver and
selenium, as tests/test_browser.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def fetch(url: str, timeout: float) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
    return time.perf_counter() - start


def screenshot(url: str, path: str, seed: int, hair: str, eye: str) -> None:
    import shutil
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1180,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.ID, "faces").get_attribute("data-state") == "done")
        Select(driver.find_element(By.ID, "hair")).select_by_visible_text(hair)
        Select(driver.find_element(By.ID, "eye")).select_by_visible_text(eye)
        box = driver.find_element(By.ID, "seed")
        box.clear()
        box.send_keys(str(seed))
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: f"hair={hair}" in d.find_element(By.ID, "download").get_attribute("href")
                   and d.find_element(By.ID, "faces").get_attribute("data-state") == "done")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        driver.save_screenshot(path)
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--screenshot", default=None)
    parser.add_argument("--screenshot-seed", type=int, default=2024)
    args = parser.parse_args()

    import gan_anime
    from gan_anime.serve.server import background
    load_start = time.perf_counter()
    run = gan_anime.load(args.run_dir)
    with background(run, "127.0.0.1", 0) as url:
        ready = time.perf_counter() - load_start
        one = f"{url}/api/faces?seed=1&count={args.count}"
        fetch(one, args.max_seconds)
        latency = statistics.median(fetch(one, args.max_seconds) for _ in range(10))
        deadline = time.perf_counter() + args.max_seconds

        def request(i: int):
            if time.perf_counter() > deadline:
                return None
            return fetch(f"{url}/api/faces?seed={i}&count={args.count}", args.max_seconds)

        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            times = [t for t in pool.map(request, range(args.requests)) if t is not None]
        seconds = time.perf_counter() - start
        if args.screenshot:
            screenshot(url, args.screenshot, args.screenshot_seed, "blue", "red")
    print(json.dumps({
        "cpu": cpu_name(), "cores": os.cpu_count(), "run": args.run_dir, "image_size": run.config.image_size,
        "faces_per_request": args.count, "startup_s": round(ready, 2), "latency_ms": round(latency * 1000, 1),
        "requests": len(times), "threads": args.threads, "seconds": round(seconds, 2),
        "requests_per_s": round(len(times) / seconds, 2), "faces_per_s": round(len(times) * args.count / seconds, 1),
        "latency_under_load_ms": round(statistics.median(times) * 1000, 1) if times else None,
        "screenshot": args.screenshot}))


if __name__ == "__main__":
    main()
