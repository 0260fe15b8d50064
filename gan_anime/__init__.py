"""gan_anime: train GANs that draw anime faces, then generate, evaluate and show them.

Public API (no flags needed, made for notebooks)::

    import gan_anime
    result = gan_anime.train(gan_anime.Config(run_dir="runs/demo", epochs=5))
    run = gan_anime.load("runs/demo")
    faces = run.generate(16, seed=7, hair="blonde", eye="blue")   # uint8 [16, 64, 64, 3]

Names are imported lazily, so ``import gan_anime`` (and the built-in dataset, and
the command line's argument checks) do not pay for importing TensorFlow.
"""

import importlib
import os

# oneDNN kernels for convolutions on x86 CPUs.  TensorFlow 2.21 left them off on an
# AVX2-only 2-core machine, where turning them on made the 64x64 train step 3x
# faster (39-48 -> 122-154 images/s, see README).  Read
# once, when TensorFlow is first imported: set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "gan_anime.config", "Schedule": "gan_anime.config", "validate": "gan_anime.config",
    "GanRun": "gan_anime.inference", "load": "gan_anime.inference",
    "Generator": "gan_anime.models", "Discriminator": "gan_anime.models", "build_models": "gan_anime.models",
    "Trainer": "gan_anime.training.trainer", "TrainResult": "gan_anime.training.trainer",
    "NonFiniteLossError": "gan_anime.training.recovery", "prepare_run": "gan_anime.training.run",
    "train": "gan_anime.training.run",
    "evaluate": "gan_anime.metrics.evaluate", "compare_folders": "gan_anime.metrics.evaluate",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gan_anime' has no attribute {name!r}")


def __dir__():
    return __all__
