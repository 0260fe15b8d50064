"""Export a run's generator as a SavedModel and a TFLite file that turn seeds into faces by themselves.

>>> from gan_anime.serve.export import export
>>> export("runs/default")                       # {'saved_model': 'runs/default/export/saved_model', 'tflite': ...}

Both files need only TensorFlow (``tf.saved_model.load`` / ``tf.lite.Interpreter``), not gan_anime::

    model = tf.saved_model.load("runs/default/export/saved_model")
    faces = model.signatures["serving_default"](seed=tf.constant([7, 8], tf.int64),
                                                hair=tf.constant(["blonde", ""]), eye=tf.constant(["blue", "red"]))
    faces["images"]                              # uint8 [2, S, S, 3]

Signature ``serving_default`` (also the TFLite file's only signature, with the same names):

* ``seed``: int64 [N], each >= 0.  Face i is ``gan_anime.load(run).generate(1, seed=seed[i], ...)[0]``: the
  noise is numpy's ``default_rng([seed, 0]).standard_normal(noise_dim)``, drawn inside the graph
  (:mod:`gan_anime.serve.numpy_rng`).
* ``hair``, ``eye`` (conditional runs only): string [N], a colour name of ``assets/classes.json`` each, or
  ``""`` for the colour that seed draws when none is asked for (as ``generate`` with ``hair=None``).
  An unknown name fails the call: ``InvalidArgumentError: unknown hair colour ...`` in the SavedModel;
  TFLite's ``invoke()`` raises a RuntimeError (a gather index out of bounds).
* output ``images``: uint8 [N, S, S, 3].

Both graphs use only integer ops that TFLite's builtin kernels have, so the TFLite file needs no select TF
ops.  The SavedModel computes the floating-point steps of numpy's sampler in float64 (its pixels equal
``generate``'s); TFLite has no float64 arithmetic, so its noise is float32 (within ~2e-7 of numpy's: pixels
within 2/255 of ``generate``'s, mostly equal).  Negative seeds and inputs of different lengths fail like an
unknown colour.

Written into ``<out_dir>`` (default ``<run>/export/``): ``saved_model/`` (``assets/config.json`` — the
run's config — and ``assets/classes.json``), ``faces.tflite`` with ``config.json`` and ``classes.json`` beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from gan_anime.serve import numpy_rng
from gan_anime.serve.ziggurat import ziggurat_tables

FORMATS = ("saved_model", "tflite", "all")
SIGNATURE = "serving_default"
TFLITE_NAME = "faces.tflite"


def _labels(names: tf.Tensor, classes, seed: tf.Tensor, stream: int, what: str) -> tf.Tensor:
    """string [N] colour names ("" = drawn by the seed) -> one-hot float32 [N, K]; unknown names fail."""
    k = len(classes)
    table = tf.constant(list(classes))
    match = tf.equal(names[:, None], table[None, :])
    known = tf.reduce_any(match, axis=1)
    empty = tf.equal(names, "")
    ok = tf.reduce_all(known | empty)
    check = tf.debugging.Assert(ok, [f"unknown {what} colour; expected one of {', '.join(classes)} "
                                     f"(or \"\" for the seed's own); got", names], summarize=64)
    with tf.control_dependencies([check]):
        idx = tf.where(known, tf.argmax(tf.cast(match, tf.int32), axis=1, output_type=tf.int32),
                       numpy_rng.bounded_int(seed, stream, k))
    # TFLite drops Assert: an unknown name becomes index k, outside the table, and fails the gather there.
    return tf.gather(tf.eye(k, dtype=tf.float32), tf.where(known | empty, idx, k))


class FaceModel(tf.Module):
    """A generator with its noise (and default tags) drawn from seeds inside the graph."""

    def __init__(self, generator, config, tables, float_dtype=tf.float64):
        super().__init__(name="faces")
        self._float = float_dtype
        # The variables are tracked (saved), the Keras model is not: Keras would add a serving function of its own.
        self.generator_variables = list(generator.variables)
        self._generate = lambda z, labels: generator(z, labels, training=False)
        self._noise_dim, self._tables = int(config.noise_dim), tables
        self._hair, self._eye = tuple(config.hair_classes), tuple(config.eye_classes)
        self.conditional = bool(config.conditional)
        seed_spec = tf.TensorSpec([None], tf.int64, name="seed")
        if self.conditional:
            spec = [seed_spec] + [tf.TensorSpec([None], tf.string, name=name) for name in ("hair", "eye")]
            self.faces = tf.function(self._conditional, input_signature=spec)
        else:
            self.faces = tf.function(self._unconditional, input_signature=[seed_spec])

    def _noise(self, seed: tf.Tensor) -> tf.Tensor:
        check = tf.debugging.Assert(tf.reduce_all(seed >= 0), ["seed must be >= 0; got", seed], summarize=64)
        with tf.control_dependencies([check]):
            n = tf.shape(seed)[0]
            # For TFLite, which drops Assert: a negative seed's index n is outside the batch and fails the gather.
            seed = tf.gather(seed, tf.where(seed >= 0, tf.range(n), n))
        return tf.cast(numpy_rng.standard_normal(seed, 0, self._noise_dim, self._tables, self._float), tf.float32)

    @staticmethod
    def _pixels(x: tf.Tensor) -> Dict[str, tf.Tensor]:
        # gan_anime.images.to_uint8: rint((x + 1) * 127.5), clipped (round half to even, as np.rint).
        return {"images": tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0.0, 255.0), tf.uint8)}

    def _unconditional(self, seed):
        return self._pixels(self._generate(self._noise(seed), None))

    def _conditional(self, seed, hair, eye):
        n, lengths = tf.shape(seed)[0], tf.stack([tf.shape(seed)[0], tf.shape(hair)[0], tf.shape(eye)[0]])
        same = tf.debugging.Assert(tf.reduce_all(tf.equal(lengths, n)),
                                   ["seed, hair and eye need one entry per face; got lengths", lengths])
        with tf.control_dependencies([same]):
            # For TFLite, which drops Assert: a shorter input fails one of these gathers.
            hair, eye = tf.gather(hair, tf.range(n)), tf.gather(eye, tf.range(n))
            seed = tf.gather(seed, tf.range(tf.reduce_max(lengths)))
        labels = (_labels(hair, self._hair, seed, 1, "hair"), _labels(eye, self._eye, seed, 2, "eye"))
        return self._pixels(self._generate(self._noise(seed), labels))


def check_noise(tables, noise_dim: int, seeds=range(64)) -> None:
    """Raise RuntimeError unless the in-graph draws equal numpy's (float32 noise, tags of 12 and 10 classes)."""
    s = tf.constant(list(seeds), tf.int64)
    got = tf.cast(numpy_rng.standard_normal(s, 0, noise_dim, tables), tf.float32).numpy()
    want = np.stack([np.random.default_rng([int(x), 0]).standard_normal(noise_dim) for x in seeds]).astype(np.float32)
    ints = [(numpy_rng.bounded_int(s, stream, k).numpy(),
             [np.random.default_rng([int(x), stream]).integers(0, k, size=1)[0] for x in seeds])
            for stream, k in ((1, 12), (2, 10))]
    if not np.array_equal(got, want) or any(not np.array_equal(a, b) for a, b in ints):
        raise RuntimeError(f"the exported noise does not reproduce numpy {np.__version__}'s default_rng draws; "
                           "the export would not give generate()'s faces")


def _classes_info(config) -> dict:
    info = {"image_size": config.image_size, "noise_dim": config.noise_dim, "conditional": bool(config.conditional),
            "signature": SIGNATURE, "inputs": ["seed"] + (["hair", "eye"] if config.conditional else []),
            "outputs": ["images"], "seed_range": [0, 2 ** 63 - 1]}
    if config.conditional:
        info.update(hair_classes=list(config.hair_classes), eye_classes=list(config.eye_classes), random_colour="")
    return info


def _write_assets(folder: str, run_dir: str, config) -> list:
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(os.path.join(run_dir, "config.json"), os.path.join(folder, "config.json"))
    with open(os.path.join(folder, "classes.json"), "w") as f:
        json.dump(_classes_info(config), f, indent=1)
    return [os.path.join(folder, name) for name in ("config.json", "classes.json")]


def _replace(src: str, dst: str) -> None:
    """Move ``src`` to ``dst``, replacing what was there (files or folders)."""
    if os.path.isdir(dst) and not os.path.islink(dst):
        shutil.rmtree(dst)
    elif os.path.exists(dst):
        os.remove(dst)
    os.replace(src, dst)


@contextlib.contextmanager
def _static_upsampling(generator):
    """Keras's UpSampling2D repeats rows and columns with dynamic shapes, which leaves the next convolution without
    a channel count, and TFLite's converter needs one: reshape each upsampled tensor to its known shape (a no-op
    that carries the shape; TFLite has no EnsureShape) while tracing."""
    import keras
    layers = [l for l in generator._flatten_layers(include_self=False) if isinstance(l, keras.layers.UpSampling2D)]
    for layer in layers:
        call = layer.call
        layer.call = lambda x, call=call, layer=layer: tf.reshape(call(x),
                                                                  [-1, *layer.compute_output_shape(x.shape)[1:]])
    try:
        yield
    finally:
        for layer in layers:
            del layer.call


def to_tflite(model: FaceModel, generator) -> bytes:
    """The FaceModel's signature as a TFLite flatbuffer of builtin ops only, its weights frozen into constants
    (no select TF ops: the TensorFlow pip package's interpreter no longer runs them since TF 2.20)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    with _static_upsampling(generator):
        frozen = convert_variables_to_constants_v2(model.faces.get_concrete_function())
    named = tf.Module()
    # Freezing flattens the outputs; a wrapper gives the signature its input and output names back.
    named.faces = tf.function(lambda *inputs: {"images": frozen(*inputs)[0]},
                              input_signature=model.faces.input_signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([named.faces.get_concrete_function()], named)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def export(run_dir: str, out_dir: Optional[str] = None, fmt: str = "all", checkpoint=None,
           run=None) -> Dict[str, str]:
    """Write the run's generator (EMA weights when kept) as ``fmt`` ("saved_model", "tflite" or "all")
    into ``out_dir`` (default ``<run_dir>/export``).  Returns {"saved_model": folder, "tflite": file}
    for what was written.  ``run``: an already loaded :class:`gan_anime.inference.GanRun`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if run is None:
        from gan_anime.inference import load
        run = load(run_dir, checkpoint)
    config = run.config
    out_dir = out_dir or os.path.join(run_dir, "export")
    os.makedirs(out_dir, exist_ok=True)
    tables = ziggurat_tables()
    check_noise(tables, config.noise_dim)
    model = FaceModel(run.generator, config, tables)
    written = {}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".tmp-export-") as tmp:
        assets = _write_assets(os.path.join(tmp, "assets"), run_dir, config)
        model.assets = [tf.saved_model.Asset(path) for path in assets]
        if fmt in ("saved_model", "all"):
            saved = os.path.join(tmp, "saved_model")
            tf.saved_model.save(model, saved, signatures={SIGNATURE: model.faces.get_concrete_function()})
            _replace(saved, os.path.join(out_dir, "saved_model"))
            written["saved_model"] = os.path.join(out_dir, "saved_model")
        if fmt in ("tflite", "all"):
            path = os.path.join(tmp, TFLITE_NAME)
            with open(path, "wb") as f:
                f.write(to_tflite(FaceModel(run.generator, config, tables, tf.float32), run.generator))
            for asset in assets:
                _replace(asset, os.path.join(out_dir, os.path.basename(asset)))
            _replace(path, os.path.join(out_dir, TFLITE_NAME))
            written["tflite"] = os.path.join(out_dir, TFLITE_NAME)
    return written


__all__ = ["FORMATS", "SIGNATURE", "FaceModel", "export", "check_noise", "to_tflite"]
