"""Distribution is correct for every GAN variant: two replicas (the CPU split in two) train the same
weights as one device, with plain SGD, and with Adam for the default variant (see _distributed_check.py)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("case", ["dcgan", "dcgan-bn", "acgan", "wgan-gp", "hinge"])
def test_mirrored_two_replicas_match_one_device(tmp_path, case):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "_distributed_check.py"), str(tmp_path),
                           case], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "OK max weight difference" in proc.stdout
