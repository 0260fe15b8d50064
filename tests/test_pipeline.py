"""The input pipeline: epoch order, replay from any step, one dataset per training run."""

import numpy as np
import pytest

import gan_anime.training.trainer as trainer_module
from gan_anime.config import Config
from gan_anime.data.folder import ImageSet
from gan_anime.data.pipeline import batch_indices, make_dataset, steps_per_epoch
from gan_anime.training.trainer import Trainer

N, B = 30, 4          # 7 steps per epoch, 2 images dropped each epoch


def _epoch(seed, epoch):
    return np.concatenate([batch_indices(N, seed, epoch, k, B).numpy() for k in range(N // B)])


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch():
    a = _epoch(0, 0)
    assert len(a) == 28 and len(set(a.tolist())) == 28 and a.min() >= 0 and a.max() < N   # no repeats
    np.testing.assert_array_equal(a, _epoch(0, 0))
    assert not np.array_equal(a, _epoch(0, 1))          # reshuffled every epoch
    assert not np.array_equal(a, _epoch(1, 0))          # and by seed
    seen = set()
    for e in range(6):
        seen |= set(_epoch(0, e).tolist())
    assert seen == set(range(N))                        # dropped images differ between epochs


def _images():
    # Image i is filled with the value i, so a batch shows which images it holds.
    return ImageSet(images=np.repeat(np.arange(N, dtype=np.uint8), 4 * 4 * 3).reshape(N, 4, 4, 3),
                    hair=np.arange(N, dtype=np.int32), eye=np.zeros(N, np.int32))


def _elements(start, end):
    ds = make_dataset(_images(), seed=3, start_step=start, end_step=end, global_batch=B, noise_dim=2,
                      augment=True)
    return [{k: v.numpy() for k, v in e.items()} for e in ds]


def test_a_dataset_started_at_step_k_replays_the_full_run_from_k():
    spe = steps_per_epoch(N, B)
    full = _elements(0, 3 * spe)
    assert len(full) == 3 * spe
    later = _elements(spe - 2, 3 * spe)                  # starts 2 steps before an epoch boundary
    assert len(later) == len(full) - (spe - 2)
    for a, b in zip(full[spe - 2:], later):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    first = full[0]
    assert first["images"].shape == (B, 4, 4, 3) and first["noise"].shape == (B, 2)
    # Labels travel with their images: image i has hair label i.
    values = np.round((first["images"][:, 0, 0, 0] + 1.0) * 127.5).astype(int)
    np.testing.assert_array_equal(values, first["hair"])


def test_bad_step_range():
    with pytest.raises(ValueError, match="start_step <= end_step"):
        make_dataset(_images(), seed=0, start_step=5, end_step=2, global_batch=B, noise_dim=2, augment=False)


def test_training_makes_one_dataset_for_all_epochs(tmp_path, monkeypatch):
    # Destroying a finished epoch's iterator stalled the loop for 14-39 s in about half the epochs.
    calls = []

    def counting(*args, **kwargs):
        calls.append((kwargs["start_step"], kwargs["end_step"]))
        return make_dataset(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "make_dataset", counting)
    cfg = Config(image_size=16, g_width=4, d_width=4, noise_dim=8, batch_size=B, epochs=3, conditional=False,
                 run_dir=str(tmp_path / "r"), checkpoint_every=0, samples_per_grid=4, log_every=100)
    rng = np.random.default_rng(0)
    result = Trainer(cfg).fit(ImageSet(images=rng.integers(0, 256, (N, 16, 16, 3), dtype=np.uint8)))
    assert result.epoch == 3 and result.step == 21
    assert calls == [(0, 21)]
