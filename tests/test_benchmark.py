"""The speed benchmark (``--benchmark``, gan_anime.benchmark), its FLOP counts and the plain reference loop.

Nothing here is timed against a number: speeds depend on the machine.  The tests check that the
counts are right (graph against hand count), that the measurement really ran, and that the command
prints one valid JSON line.
"""

import json
import os
import sys

import pytest

from conftest import ROOT

TINY = dict(image_size=16, width=8, batch_size=8)


def _step_graph_flops(tmp_path, gan, op_types, **fields):
    from gan_anime.benchmark import benchmark_config, graph_flops, random_images
    from gan_anime.training.trainer import Trainer
    cfg = benchmark_config(gan, image_size=32, width=8, batch_size=8, run_dir=str(tmp_path / gan), **fields)
    trainer = Trainer(cfg)
    data = random_images(cfg, cfg.batch_size * cfg.n_critic * 2)
    batch = next(trainer._batches(data, start=0, end=1))
    # Step 1: no lazy R1 (it applies on steps divisible by r1_every).
    return cfg, graph_flops(trainer.train_step(1).get_concrete_function(batch), op_types)


@pytest.mark.parametrize("gan, fields", [
    ("dcgan", {}), ("dcgan", {"upsample": "nearest"}), ("dcgan", {"mbstd_group": 0}), ("acgan", {}),
    ("wgan-gp", {}), ("dcgan", {"upsample": "blur", "g_depth": 2}), ("dcgan", {"upsample": "nearest", "g_depth": 3}),
    ("dcgan", {"d_depth": 2}), ("hinge", {"d_depth": 3}), ("dcgan", {"g_out_width": 8, "upsample": "blur"}),
    ("dcgan", {"g_residual": True}), ("dcgan", {"attention": 16}), ("hinge", {"attention": 8}),
    ("wgan-gp", {"attention": 16}), ("dcgan", {"g_skip": True}),
    ("dcgan", {"d_residual": True}), ("dcgan", {"g_cbn": True, "g_out_width": 8}), ("dcgan", {"g_sle": True}),
], ids=["dcgan", "nearest", "no-mbstd", "acgan", "wgan-gp", "blur-depth2", "nearest-depth3", "d-depth2", "hinge-d-depth3",
         "out-width-blur", "residual", "attention16", "hinge-attention8", "wgan-gp-attention16",
         "skip", "d-residual", "cbn-out-width", "sle"])
def test_hand_count_matches_the_traced_step(tmp_path, gan, fields):
    from gan_anime.benchmark import HEAVY_OPS, layer_flops_per_image
    cfg, flops = _step_graph_flops(tmp_path, gan, HEAVY_OPS, **fields)
    per_image = flops / (cfg.batch_size * cfg.n_critic)
    hand = layer_flops_per_image(cfg.replace(r1_gamma=0.0))   # step 1 has no R1
    assert per_image == pytest.approx(hand, rel=0.03), (per_image, hand)


def test_r1_steps_cost_what_the_hand_count_says(tmp_path):
    from gan_anime.benchmark import (HEAVY_OPS, benchmark_config, forward_flops, graph_flops, random_images)
    from gan_anime.training.trainer import Trainer
    cfg = benchmark_config("dcgan", image_size=32, width=8, batch_size=8, run_dir=str(tmp_path / "r"))
    trainer = Trainer(cfg)
    batch = next(trainer._batches(random_images(cfg, 16), start=0, end=1))
    with_r1, without = (graph_flops(trainer.train_step(s).get_concrete_function(batch), HEAVY_OPS) / 8
                        for s in (0, 1))
    assert trainer.train_step(0) is not trainer.train_step(1)
    assert with_r1 - without == pytest.approx(3 * forward_flops(cfg)["D"], rel=0.05)


def test_dead_gradients_are_not_counted(tmp_path):
    """The traced step holds gradients nobody uses (a conv's filter gradient on the path from G's loss);
    counting them would overstate the work by a quarter or more."""
    from gan_anime.benchmark import HEAVY_OPS
    from tensorflow.python.framework import ops
    cfg, live = _step_graph_flops(tmp_path, "dcgan", HEAVY_OPS)
    from gan_anime.benchmark import benchmark_config, random_images
    from gan_anime.training.trainer import Trainer
    trainer = Trainer(cfg.replace(run_dir=str(tmp_path / "all")))
    batch = next(trainer._batches(random_images(cfg, 16), start=0, end=1))
    graph = trainer.train_step(1).get_concrete_function(batch).graph
    everything = sum(ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0
                     for op in graph.get_operations() if op.type in HEAVY_OPS)
    assert everything > 1.2 * live


def test_window_rates():
    from gan_anime.benchmark import window_rates
    times = [0.0, 1.0, 2.0, 2.5, 3.0, 5.0]   # step end times
    assert window_rates(times, 2, 8) == [16 / 2.0, 16 / 1.0]


def test_benchmark_measures_a_tiny_model():
    from gan_anime.benchmark import benchmark, layer_flops_per_image
    result = benchmark(**TINY, steps=8, matmul=False)
    assert result["window_steps"] == 4 and result["steps"] == 8   # lazy R1 every 4: windows of 4 steps
    assert len(result["train_images_per_s_windows"]) == 2
    for key in ("train_images_per_s", "bare_step_images_per_s", "pipeline_images_per_s", "achieved_gflops",
                "peak_rss_mb"):
        assert result[key] > 0, key
    assert result["achieved_gflops"] == pytest.approx(result["flops_per_image"] * result["train_images_per_s"]
                                                      / 1e9, rel=0.01, abs=0.01)
    # All ops, weighted 3:1 by R1-free and R1 steps: a little above the hand count of the convs and matmuls.
    assert 1.0 <= result["flops_per_image"] / result["flops_per_image_by_layers"] < 1.5
    assert "matmul_gflops" not in result and result["cores"] >= 1


def test_benchmark_steps_are_whole_windows():
    from gan_anime.benchmark import benchmark
    result = benchmark(**TINY, steps=5, matmul=False, r1_gamma=0.0)
    assert result["window_steps"] == 4 and result["steps"] == 8
    with pytest.raises(ValueError, match="steps must be >= 1"):
        benchmark(**TINY, steps=0)


def test_matmul_rate_is_positive():
    from gan_anime.benchmark import matmul_gflops
    assert matmul_gflops(n=256, repeats=3) > 0.1


def test_cli_benchmark_prints_one_json_line(run_cmd, tmp_path):
    out = run_cmd(["ENTRY", "--benchmark", "--image-size", "16", "--width", "8", "--batch-size", "8",
                   "--steps", "4"], tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1, out.stdout
    result = json.loads(lines[0])
    assert result["benchmark"] == "gan_anime" and result["image_size"] == 16 and result["g_width"] == 8
    assert result["matmul_gflops"] > 0 and 0 < result["mfu"]
    assert result["train_images_per_s"] > 0 and result["flops_per_image"] > 0
    assert os.listdir(tmp_path) == []   # nothing left behind


def test_reference_loop_runs_with_onednn_on_and_off():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import reference_loop
    finally:
        sys.path.pop(0)
    on = reference_loop.run("gan_anime", 16, 8, 8, 4, onednn="on")
    off = reference_loop.run("tutorial", 16, 8, 8, 4, onednn="off")
    assert (on["onednn"], off["onednn"]) == (True, False)   # the setting reached TensorFlow
    assert (on["onednn_env"], off["onednn_env"]) == ("1", "0")
    assert on["precision"] == off["precision"] == "float32"   # the tutorial's arithmetic on every CPU
    assert on["train_images_per_s"] > 0 and off["train_images_per_s"] > 0
    assert on["flops_per_image"] != off["flops_per_image"]  # two architectures


def test_profile_says_where_the_op_time_goes():
    from gan_anime.benchmark import profile
    result = profile(image_size=16, width=8, batch_size=8, steps=2)
    shares = result["op_time"]
    assert sum(shares.values()) == pytest.approx(1.0, abs=0.01)
    assert sum(v for k, v in shares.items() if "Conv" in k) > 0.3, shares   # the convolutions were traced
