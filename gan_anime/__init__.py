"""gan_anime: train GANs that draw anime faces, then generate, evaluate and show them.

Public API (no flags needed, made for notebooks)::

    import gan_anime
    result = gan_anime.train(gan_anime.Config(run_dir="runs/demo", epochs=5))
    run = gan_anime.load("runs/demo")
    faces = run.generate(16, seed=7, hair="blonde", eye="blue")   # uint8 [16, 64, 64, 3]
"""

from gan_anime.config import Config, Schedule, validate
from gan_anime.inference import GanRun, load
from gan_anime.models import Discriminator, Generator, build_models
from gan_anime.training.trainer import NonFiniteLossError, Trainer, TrainResult, prepare_run, train

__version__ = "0.1.0"

__all__ = ["Config", "Schedule", "validate", "GanRun", "load", "Generator", "Discriminator", "build_models",
           "Trainer", "TrainResult", "NonFiniteLossError", "prepare_run", "train", "__version__"]
