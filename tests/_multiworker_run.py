"""Run by test_multiworker.py in a process of its own: one worker of a two-worker cluster on 127.0.0.1
(or, without ports, one process on one device), training the tiny model of SPEC.

usage: _multiworker_run.py SPEC_JSON, SPEC a dict:
  data_dir   the image folder (absolute)
  ports      [port of worker 0, port of worker 1], or null: one process, OneDeviceStrategy
  task       this worker's index (0 is the chief)
  resume     continue the run (default false)
  pause_at   the chief pauses for good after writing the checkpoint of this step, printing "PAUSED"
             (so the test can kill the workers at a known point)
  nan_at     the chief sets one generator weight to NaN (its own copy only) after this step, once: the
             next step's statistics are NaN on every worker and the run rolls back

The run directory is "run" under the working directory: each worker gets its own working directory, so
no worker can read another's files (as on machines without a shared disk).  Prints one line
"RESULT {json}" at the end.
"""

import json
import os
import sys
import time

SPEC = json.loads(sys.argv[1])
if SPEC.get("ports"):
    # Before TensorFlow starts: MultiWorkerMirroredStrategy reads it when it is made.
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in SPEC["ports"]]},
                                          "task": {"type": "worker", "index": SPEC["task"]}})

import numpy as np  # noqa: E402
from absl import logging  # noqa: E402

import gan_anime  # noqa: E402
from gan_anime.training.hooks import Hook  # noqa: E402

#: A tiny model (40 images / batch 8 = 5 steps per epoch); test_multiworker.CLI_FIELDS gives the command line the
#: same settings.  float32 and no R1: bfloat16 rounds differently when a batch is split, and one compiled step
#: is quicker to trace than two.
FIELDS = dict(image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=8, epochs=50, max_steps=8,
              checkpoint_every=3, samples_per_grid=4, log_every=1, precision="float32", deterministic=True,
              r1_gamma=0.0, keep_checkpoints=10)


class PauseAfter(Hook):
    def __init__(self, step: int):
        self.step = step

    def checkpoint(self, path):
        if path.endswith(f"ckpt-{self.step}"):
            print("PAUSED", path, flush=True)
            time.sleep(600)


class NanAfter(Hook):
    def __init__(self, step: int):
        self.step, self.done = step, False

    def begin(self, run):
        self.trainer = run.trainer

    def step_end(self, event):
        if event.step == self.step and not self.done:
            self.done = True
            w = self.trainer.G.trainable_weights[0]
            w.assign(np.full(w.shape, np.nan, np.float32))


def main() -> None:
    logging.set_verbosity(logging.INFO)   # the progress lines, for a failing test's message
    cfg = gan_anime.Config(data_dir=SPEC["data_dir"], run_dir="run", cache_dir="cache",
                           strategy="multiworker" if SPEC.get("ports") else "default", **FIELDS)
    hooks = [PauseAfter(SPEC["pause_at"])] if SPEC.get("pause_at") else []
    hooks += [NanAfter(SPEC["nan_at"])] if SPEC.get("nan_at") else []
    result = gan_anime.train(cfg, resume=SPEC.get("resume", False), hooks=hooks, progress="lines")
    print("RESULT " + json.dumps({"status": result.status, "step": result.step, "signal": result.signal,
                                  "checkpoint": result.checkpoint}), flush=True)


if __name__ == "__main__":
    main()
