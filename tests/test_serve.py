"""--serve: the web app's API gives generate()'s faces, refuses bad parameters with 400, and serves threads."""

import base64
import io
import json
import os
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import gan_anime
from _serve_runs import conditional_run, unconditional_run
from conftest import expand
from gan_anime.serve.server import background

#: The load test: bounded in requests, threads and time.
LOAD_REQUESTS, LOAD_THREADS, LOAD_SECONDS = 20, 4, 120


@pytest.fixture(scope="module")
def run(cli_env):
    return gan_anime.load(conditional_run(cli_env["GAN_ANIME_CACHE"]))


@pytest.fixture(scope="module")
def url(run):
    with background(run) as base:
        yield base


def get(url, timeout=60):
    """(status, content type, body bytes) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def decode(body):
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) for b in json.loads(body)["images"]])


def test_faces_are_generates(run, url):
    status, kind, body = get(f"{url}/api/faces.json?seed=5&count=6&hair=blue&eye=red")
    assert status == 200 and kind == "application/json"
    assert {k: v for k, v in json.loads(body).items() if k != "images"} == {
        "seed": 5, "count": 6, "hair": "blue", "eye": "red", "scale": 1, "image_size": 16}
    np.testing.assert_array_equal(decode(body), run.generate(6, seed=5, hair="blue", eye="red"))
    np.testing.assert_array_equal(decode(get(f"{url}/api/faces.json?seed=9&count=3&hair=")[2]), run.generate(3, seed=9))
    status, kind, png = get(f"{url}/api/faces?seed=5&count=6&hair=blue&eye=red&scale=2")
    assert status == 200 and kind == "image/png"
    grid = run.grid(run.generate(6, seed=5, hair="blue", eye="red"))
    assert Image.open(io.BytesIO(png)).size == (grid.width * 2, grid.height * 2)


def test_interpolation_is_the_runs(run, url):
    status, _, body = get(f"{url}/api/interpolate.json?seed_a=3&seed_b=8&steps=5&eye=green")
    assert status == 200
    frames = decode(body)
    np.testing.assert_array_equal(frames, run.interpolate([3, 8], frames=4, eye="green"))
    np.testing.assert_array_equal(frames[0], run.generate(1, seed=3, eye="green")[0])
    assert get(f"{url}/api/interpolate?seed_a=3&seed_b=8")[1] == "image/png"


def test_page_and_info(run, url):
    status, kind, page = get(url + "/")
    assert status == 200 and kind.startswith("text/html")
    for element in (b'id="hair"', b'id="eye"', b'id="seed"', b'id="generate"', b'id="random"', b'id="interpolate"',
                    b'id="download"', b'id="faces"'):
        assert element in page
    info = json.loads(get(url + "/api/info")[2])
    assert info["conditional"] and info["hair_classes"] == list(run.hair_classes) and info["max_count"] == 64


@pytest.mark.parametrize("query, parameter, words", [
    ("faces?seed=-1", "seed", "integer from 0 to 4294967295"),
    ("faces?seed=abc", "seed", "integer"),
    ("faces?seed=1.5", "seed", "integer"),
    ("faces?seed=99999999999999999999999999", "seed", "integer from 0 to 4294967295"),
    ("faces?seed=4294967296", "seed", "integer from 0 to 4294967295"),
    ("faces?count=65", "count", "integer from 1 to 64"),
    ("faces?count=0", "count", "integer from 1 to 64"),
    ("faces?count=", "count", "integer from 1 to 64"),
    ("faces?hair=violet", "hair", "one of orange, white"),
    ("faces.json?eye=BLUE", "eye", "one of black, orange"),
    ("faces?scale=9", "scale", "integer from 1 to 8"),
    ("faces?colour=blue", "colour", "unknown parameter"),
    ("faces?seed=1&seed=2", "seed", "one value"),
    ("interpolate?steps=1", "steps", "integer from 2 to 64"),
    ("interpolate.json?seed_b=x", "seed_b", "integer"),
    ("interpolate?count=4", "count", "unknown parameter"),
])
def test_bad_requests_are_400_with_a_message(url, query, parameter, words):
    status, kind, body = get(f"{url}/api/{query}")
    answer = json.loads(body)
    assert (status, kind) == (400, "application/json")
    assert answer["parameter"] == parameter and answer["error"].startswith(f"{parameter}: ")
    assert words in answer["error"]


def test_unconditional_run_refuses_colours(cli_env):
    with background(gan_anime.load(unconditional_run(cli_env["GAN_ANIME_CACHE"]))) as base:
        assert json.loads(get(base + "/api/info")[2])["conditional"] is False
        status, _, body = get(base + "/api/faces?hair=blue")
        assert status == 400 and "trained without hair and eye tags" in json.loads(body)["error"]
        assert get(base + "/api/faces?count=2")[0] == 200


def test_concurrent_requests_match_sequential(url):
    queries = [f"faces.json?seed={s}&count={c}&hair={h}" for s, c, h in
               [(1, 16, "blue"), (2, 3, ""), (3, 9, "red"), (1, 16, "blue"), (4, 1, "aqua"), (5, 12, "")]]
    queries += ["interpolate.json?seed_a=1&seed_b=2&steps=6", "faces?seed=7&count=8&eye=pink"] * 2
    sequential = [get(f"{url}/api/{q}") for q in queries]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda q: get(f"{url}/api/{q}"), queries * 2))
    assert all(s == 200 for s, _, _ in sequential)
    assert concurrent == sequential * 2


def test_small_load(url):
    """20 requests of 16 faces from 4 threads on 127.0.0.1; prints the latency of one and the requests/s."""
    one = f"{url}/api/faces?seed=11&count=16&hair=blue"
    get(one)
    start = time.perf_counter()
    assert get(one)[0] == 200
    latency = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(LOAD_THREADS) as pool:
        statuses = list(pool.map(lambda i: get(f"{url}/api/faces?seed={i}&count=16", timeout=LOAD_SECONDS)[0],
                                 range(LOAD_REQUESTS)))
    seconds = time.perf_counter() - start
    print(f"one 16-face request: {latency * 1000:.0f} ms; {LOAD_REQUESTS} requests from {LOAD_THREADS} threads in "
          f"{seconds:.2f} s: {LOAD_REQUESTS / seconds:.1f} requests/s")
    assert statuses == [200] * LOAD_REQUESTS and seconds < LOAD_SECONDS


def test_cli_serve_prints_the_url_and_stops_on_ctrl_c(cli_env, tmp_path, run):
    proc = subprocess.Popen(expand(["ENTRY", "--serve", "--run-dir", run.run_dir, "--port", "0"]), cwd=str(tmp_path),
                            env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert select.select([proc.stdout], [], [], 180)[0], "no line on stdout within 180 s"
        line = proc.stdout.readline()
        assert line.startswith(f"serving {os.path.abspath(run.run_dir)} at http://127.0.0.1:"), (
            line, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        base = line.split(" at ")[1].split("/ ")[0]
        assert get(base + "/api/faces?count=1")[0] == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (proc.returncode, out, err[-3000:])
        assert out.strip() == "stopped", (out, err[-3000:])
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_serve_refuses_a_busy_port(cli_env, tmp_path, run, url):
    port = url.rsplit(":", 1)[1]
    result = subprocess.run(expand(["ENTRY", "--serve", "--run-dir", run.run_dir, "--port", port]), cwd=str(tmp_path),
                            env=cli_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"gan-anime: error: --port: cannot listen on 127.0.0.1:{port}"), last
