"""Measuring what a run draws: FID and KID on the standard FID Inception features (inception.py,
fid.py), a tag classifier for conditional runs (tags.py), and run/folder evaluation (evaluate.py).

Modules are imported on use: ``gan_anime.metrics`` itself imports nothing heavy.
"""
