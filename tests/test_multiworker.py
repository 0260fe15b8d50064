"""Several workers: two processes on 127.0.0.1 (MultiWorkerMirroredStrategy, TF_CONFIG) train the weights
one process trains with the same global batch (also through a rollback); killed and resumed they need no
checkpoint of their own (the chief's state is broadcast); a stop signal to one of them stops both at the same
step.

Each worker runs in a working directory of its own with the run directory "run" under it, so no worker
reads another's files, as on machines without a shared disk.  Training runs in subprocesses
(_multiworker_run.py, or the command line); this process only reads the checkpoints they write.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from gan_anime.data.folder import ImageSet
from gan_anime.data.pipeline import make_dataset, pipeline_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "tests", "_multiworker_run.py")
#: As _multiworker_run.FIELDS, on the command line (float32, no R1: one compiled step, no bfloat16 round-off).
CLI_FIELDS = ["--image-size", "16", "--width", "4", "--noise-vector", "8", "--batch-size", "8", "--epochs", "50",
              "--log-every", "1", "--precision", "float32", "--r1-gamma", "0", "--deterministic",
              "--strategy", "multiworker"]


def _images(directory, n):
    """``n`` small PNGs like conftest's ``image_dir`` (40 of them: 5 steps per epoch at batch 8)."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        a = np.full((24, 20, 3), rng.integers(0, 255, 3), np.uint8)
        a[4:14, 5:15] = rng.integers(0, 255, 3)
        Image.fromarray(a).save(os.path.join(directory, f"{i:03d}.png"))
    return str(directory)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _env(ports=None, task=None):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if ports:
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                       "task": {"type": "worker", "index": task}})
    return env


class Procs:
    """Processes whose output goes to files (a full pipe cannot block them); all killed on exit."""

    def __init__(self):
        self.procs = []

    def start(self, argv, cwd, env):
        os.makedirs(cwd, exist_ok=True)
        log = open(os.path.join(cwd, "output.txt"), "w")
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        proc.log_path = log.name
        log.close()
        self.procs.append(proc)
        return proc

    def wait_for(self, proc, text, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in output(proc):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear:\n{output(proc)[-3000:]}")

    def finish(self, timeout=150):
        deadline = time.time() + timeout
        for p in self.procs:
            try:
                p.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        hung = [p for p in self.procs if p.poll() is None]
        self.kill()
        assert not hung, "still running after %d s:\n%s" % (timeout, "\n".join(output(p)[-2000:] for p in hung))

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def output(proc):
    with open(proc.log_path) as f:
        return f.read()


def result(proc):
    line = next((l for l in output(proc).splitlines() if l.startswith("RESULT ")), None)
    assert line is not None, output(proc)[-3000:]
    return json.loads(line[len("RESULT "):])


def weights(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "OBJECT_GRAPH" not in k and not k.startswith("save_counter")}


def assert_same(a, b, atol, what):
    assert a.keys() == b.keys(), f"{what}: {sorted(set(a) ^ set(b))[:5]}"
    for k in a:
        np.testing.assert_allclose(np.asarray(a[k], np.float64), np.asarray(b[k], np.float64), rtol=0, atol=atol,
                                   err_msg=f"{what}: {k}")


def start_pair(procs, root, image_dir, **chief_spec):
    """Workers 0 (the chief, with ``chief_spec``) and 1 of _multiworker_run.py, in root/w0 and root/w1."""
    ports = _free_ports(2)
    return [procs.start([sys.executable, RUN, json.dumps({"data_dir": image_dir, "ports": ports, "task": i,
                                                          **(chief_spec if i == 0 else {})})],
                        os.path.join(root, f"w{i}"), _env()) for i in range(2)]


#: The chief makes one of its generator weights NaN after step 2 (its own copy only): step 3's all-reduced
#: statistics are NaN on both workers, both roll back to ckpt-0 (the chief restores, the other gets its state)
#: with halved learning rates and data stream 1, and go on to step 8.
NAN_AT = 2


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, image_dir):
    """8 steps (crossing an epoch's end; a rollback at step 3; checkpoints 0, 3, 5, 6, 8) by two workers
    and by one process."""
    root = str(tmp_path_factory.mktemp("uninterrupted"))
    procs = Procs()
    try:
        pair = start_pair(procs, root, image_dir, nan_at=NAN_AT)
        one = procs.start([sys.executable, RUN, json.dumps({"data_dir": image_dir, "ports": None, "nan_at": NAN_AT})],
                          os.path.join(root, "one"), _env())
        procs.finish()
    finally:
        procs.kill()
    for p in pair + [one]:
        assert p.returncode == 0, output(p)[-3000:]
        assert result(p)["step"] == 8 and result(p)["status"] == "max_steps", result(p)
        assert "non-finite values at step 3" in output(p) and "rolled back to run/checkpoints/ckpt-0" in output(p)
    for run in ("w0", "one"):
        rows = open(os.path.join(root, run, "run", "logs", "rollbacks.csv")).read().splitlines()
        assert len(rows) == 2 and rows[1].startswith("3,0,ckpt-0,0.5,1,"), rows
    return root


def test_two_workers_train_what_one_process_trains(uninterrupted):
    chief = weights(os.path.join(uninterrupted, "w0", "run", "checkpoints", "ckpt-8"))
    one = weights(os.path.join(uninterrupted, "one", "run", "checkpoints", "ckpt-8"))
    start = weights(os.path.join(uninterrupted, "one", "run", "checkpoints", "ckpt-0"))
    generator = [k for k in one if k.startswith("generator/") and one[k].dtype == np.float32]
    moved = max(float(np.abs(one[k] - start[k]).max()) for k in generator)
    assert moved > 1e-4, f"the generator hardly trained (max change {moved}): the comparison would show nothing"
    # Each worker built only its half of every global batch; together they took the same steps, and rolled
    # back at the same step to the same state.
    assert_same(chief, one, 1e-5, "two workers vs one process")
    # The other worker's copy (written, never read) holds the same state.
    other = weights(os.path.join(uninterrupted, "w1", "run", ".worker_1", "ckpt-8"))
    assert_same(other, chief, 0.0, "worker 1 vs the chief")


def test_killed_workers_resume_from_the_chief_alone(tmp_path, image_dir, uninterrupted):
    root = str(tmp_path)
    procs = Procs()
    try:
        # As the uninterrupted run, with its rollback, up to ckpt-3; there the chief stops moving.
        pair = start_pair(procs, root, image_dir, nan_at=NAN_AT, pause_at=3)
        procs.wait_for(pair[0], "PAUSED")
        for p in pair:
            p.send_signal(signal.SIGKILL)
        procs.finish(30)
    finally:
        procs.kill()
    assert [p.returncode for p in pair] == [-9, -9], [output(p)[-2000:] for p in pair]
    assert tf.train.latest_checkpoint(os.path.join(root, "w0", "run", "checkpoints")).endswith("ckpt-3")
    # The other worker loses everything it had: its checkpoints, its copy of the config, its image cache.
    worker_dir = os.path.join(root, "w1")
    for name in os.listdir(worker_dir):
        if name != "output.txt":
            shutil.rmtree(os.path.join(worker_dir, name))
    # Both continue with the same command line; worker 1 has no run directory to find.
    ports = _free_ports(2)
    procs = Procs()
    try:
        resumed = [procs.start([sys.executable, "-m", "gan_anime", "--load", "--run-dir", "run", "--max-steps", "8",
                                "--strategy", "multiworker"], os.path.join(root, f"w{i}"), _env(ports, i))
                   for i in range(2)]
        procs.finish()
    finally:
        procs.kill()
    for p in resumed:
        assert p.returncode == 0, output(p)[-3000:]
        assert "max_steps: epoch 1/50, step 8" in output(p), output(p)[-3000:]
    assert not os.path.exists(os.path.join(worker_dir, "run", "checkpoints"))
    assert sorted(os.listdir(os.path.join(worker_dir, "run"))) == [".worker_1"]
    expected = weights(os.path.join(uninterrupted, "w0", "run", "checkpoints", "ckpt-8"))
    chief = weights(os.path.join(root, "w0", "run", "checkpoints", "ckpt-8"))
    assert_same(chief, expected, 1e-6, "resumed vs uninterrupted")
    assert_same(weights(os.path.join(worker_dir, "run", ".worker_1", "ckpt-8")), chief, 0.0, "worker 1 vs the chief")


def test_a_signal_to_one_worker_stops_both_at_the_same_step(tmp_path):
    images = _images(tmp_path / "imgs", 120)                  # 15 steps per epoch: no epoch-end checkpoint
    ports = _free_ports(2)
    procs = Procs()
    try:
        pair = [procs.start([sys.executable, "-m", "gan_anime", "--train", "--data-dir", images, "--run-dir", "run",
                             "--checkpoint-every", "0", *CLI_FIELDS], str(tmp_path / f"w{i}"), _env(ports, i))
                for i in range(2)]
        procs.wait_for(pair[0], "step 3/15")
        pair[1].send_signal(signal.SIGTERM)                   # the chief gets nothing
        procs.finish()
    finally:
        procs.kill()
    stopped = []
    for p in pair:
        text = output(p)
        assert p.returncode == 143, text[-3000:]              # as a run stopped by SIGTERM, on both
        line = next(l for l in text.splitlines() if l.startswith("interrupted: "))
        stopped.append(int(line.split(", step ")[1].split(",")[0]))
    assert stopped[0] == stopped[1] and 3 <= stopped[0] < 15, stopped
    step = stopped[0]
    ckpts = {os.path.join("w0", "run", "checkpoints"), os.path.join("w1", "run", ".worker_1")}
    for d in ckpts:   # one checkpoint for the stop (besides the fresh run's ckpt-0), on both workers
        names = sorted(n[:-len(".index")] for n in os.listdir(tmp_path / d) if n.endswith(".index"))
        assert names == ["ckpt-0", f"ckpt-{step}"], (d, names)
    rows = (tmp_path / "w0" / "run" / "logs" / "losses.csv").read_text().strip().splitlines()
    assert rows[-1].split(",")[0] == str(step)


# ------------------------------------------------------------------------------- the input pipeline
def test_each_worker_builds_only_its_rows_and_together_one_processs_batches():
    rng = np.random.default_rng(0)
    data = ImageSet(images=rng.integers(0, 256, (24, 4, 4, 3), dtype=np.uint8),
                    hair=np.arange(24, dtype=np.int32), eye=np.zeros(24, np.int32))
    assert pipeline_rows(8, 2, None) == (0, 8)
    assert pipeline_rows(8, 4, tf.distribute.InputContext(2, 1, 4)) == (4, 8)
    for k in (1, 2):
        args = dict(seed=3, start_step=0, end_step=3, global_batch=8, noise_dim=2, augment=True, num_replicas=2,
                    batches_per_step=k)
        whole = [{n: v.numpy() for n, v in e.items()} for e in make_dataset(data, **args)]   # replica 0, 1, 0, ...
        for worker in (0, 1):
            ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2)
            own = [{n: v.numpy() for n, v in e.items()} for e in make_dataset(data, input_context=ctx, **args)]
            assert len(own) == 3
            for a, b in zip(own, whole[worker::2]):
                assert a.keys() == b.keys()
                for n in a:
                    np.testing.assert_array_equal(a[n], b[n], err_msg=f"k={k} worker {worker} {n}")
