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
    def __init__(self, data, cfg):
        import os
        from gan_anime.metrics import inception
        self.data, self.cfg = data, cfg
        self.extractor = self.real = self.labels = None
        # Fail before training, not at step N: the weights must be there.
        if cfg.fid_weights is None:
            inception.default_weights_path()
        elif not os.path.isfile(cfg.fid_weights):
            raise FileNotFoundError(f"FID Inception weights file {cfg.fid_weights} does not exist")

    def begin(self, run):
        self.trainer = run.trainer

    def _prepare(self):
        from gan_anime.data import cache_dir_for
        from gan_anime.metrics.evaluate import EVAL_SEED, sample_labels
        from gan_anime.metrics.fid import FeatureExtractor, cached_features
        cache = cache_dir_for(self.cfg)
        self.extractor = FeatureExtractor(self.cfg.fid_weights, cache)
        self.real, _ = cached_features(self.extractor, self.data.images, cache, desc="real images (once)")
        if self.cfg.conditional:
            self.labels = sample_labels(self.data, self.cfg.fid_samples, EVAL_SEED)
        from gan_anime.inference import generator_inputs
        self.noise, _ = generator_inputs(self.cfg.replace(conditional=False), self.cfg.fid_samples, EVAL_SEED)

    def step_end(self, event):
        if event.step % self.cfg.fid_every:
            return
        from gan_anime.inference import run_generator
        from gan_anime.metrics.evaluate import append_metrics
        from gan_anime.metrics.fid import compare_features
        if self.extractor is None:
            self._prepare()
        start = time.time()
        trainer = self.trainer
        trainer.refresh_ema_statistics()   # the averaged generator's own batch-norm statistics, as save() sets
        images = run_generator(trainer.G_ema or trainer.G, self.noise, self.labels)
        scores = compare_features(self.real, self.extractor(images, desc=f"FID at step {event.step}"))
        event.logs["fid"], event.logs["kid"] = scores["fid"], scores["kid"]
        append_metrics(self.cfg.run_dir, {"step": event.step, **scores, "num_samples": self.cfg.fid_samples,
                                          "num_real": len(self.data), "during_training": True})
        logging.info("step %d: FID %.2f, KID %.4f (%d samples, %.1f s)", event.step, scores["fid"],
                     scores["kid"], self.cfg.fid_samples, time.time() - start)
