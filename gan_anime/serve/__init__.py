"""Faces for people who never open a terminal.

* :mod:`gan_anime.serve.export` — the run's generator as a SavedModel and a TFLite file (seed, hair, eye -> pixels)
  that need only TensorFlow; :mod:`gan_anime.serve.numpy_rng` draws ``generate``'s noise inside their graphs.
* :mod:`gan_anime.serve.app` — a local web page and JSON + PNG API (FastAPI); :mod:`gan_anime.serve.server` runs it.

Importing this package imports nothing heavy: FastAPI and TensorFlow come with the modules that need them.
"""
