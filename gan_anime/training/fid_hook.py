"""FID (and KID) during training: ``--fid-every N`` / ``Config(fid_every=N)``.

Every N steps the averaged generator draws ``fid_samples`` faces (fixed noise and labels, so the
curve follows the weights, not the sampling) and they are compared with the training images'
features, which are computed once per data set and cached (shared with ``--evaluate``).
The value lands in the step log (losses.csv), TensorBoard, the progress line, ``loss.png``'s
panels and ``logs/metrics.jsonl`` through the ordinary hook machinery.
"""

from __future__ import annotations

import time

from absl import logging

from gan_anime.training.hooks import Hook


class FidHook(Hook):
    """Built before training starts, so missing or unreadable weights stop the run before its first step."""

    def __init__(self, data, cfg):
        from gan_anime.data import cache_dir_for
        from gan_anime.metrics.evaluate import EVAL_SEED, sample_labels
        from gan_anime.metrics.fid import FeatureExtractor
        self.data, self.cfg, self.cache = data, cfg, cache_dir_for(cfg)
        self.extractor = FeatureExtractor(cfg.fid_weights, self.cache)
        self.labels = sample_labels(data, cfg.fid_samples, EVAL_SEED) if cfg.conditional else None
        self.real = None   # the training images' features: computed (or read from the cache) at the first FID

    def begin(self, run):
        from gan_anime.metrics.evaluate import drop_training_metrics_after
        self.trainer = run.trainer
        drop_training_metrics_after(self.cfg.run_dir, run.start_step)

    def step_end(self, event):
        if event.step % self.cfg.fid_every:
            return
        from gan_anime.metrics.evaluate import EVAL_SEED, append_metrics, generate_for_eval
        from gan_anime.metrics.fid import cached_features, compare_features
        if self.real is None:
            self.real, _ = cached_features(self.extractor, self.data.images, self.cache, desc="real images (once)")
        start = time.time()
        trainer = self.trainer
        trainer.refresh_ema_statistics()   # the averaged generator's own batch-norm statistics, as save() sets
        images = generate_for_eval(trainer.G_ema or trainer.G, self.cfg, self.cfg.fid_samples, EVAL_SEED, self.labels)
        scores = compare_features(self.real, self.extractor(images, desc=f"FID at step {event.step}"))
        event.logs["fid"], event.logs["kid"] = scores["fid"], scores["kid"]
        append_metrics(self.cfg.run_dir, {"step": event.step, **scores, "num_samples": self.cfg.fid_samples,
                                          "num_real": len(self.data), "during_training": True})
        logging.info("step %d: FID %.2f, KID %.4f (%d samples, %.1f s)", event.step, scores["fid"],
                     scores["kid"], self.cfg.fid_samples, time.time() - start)
