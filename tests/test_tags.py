"""Tag classifier (gan_anime.metrics.tags): held-out accuracy on the built-in faces, its cache, and
the per-class accuracy report."""

import json
import os
import random

import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

import gan_anime
from gan_anime.data import ImageSet, load_data
from gan_anime.metrics import tags

#: The bar of the classifier on held-out built-in faces.
HAIR_BAR, EYE_BAR = 0.95, 0.90


@pytest.fixture(scope="module")
def faces32(cli_env):
    """2,000 built-in faces at 32 px from the session-wide faces cache (rendered once, ~5 s)."""
    data, _ = load_data(gan_anime.Config(image_size=32, faces_count=2000, cache_dir=cli_env["GAN_ANIME_CACHE"]))
    return data


@pytest.fixture(scope="module")
def trained(faces32, tmp_path_factory):
    """(classifier, cache dir): trained once for this module with the default settings (~15 s)."""
    cache = str(tmp_path_factory.mktemp("tag_cache"))
    return tags.get_tag_classifier(faces32, cache), cache


def _random_set(n=40, size=16, seed=0, tagged=True):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    if not tagged:
        return ImageSet(images=images)
    return ImageSet(images=images, hair=rng.integers(0, 3, n).astype(np.int32),
                    eye=rng.integers(0, 2, n).astype(np.int32), hair_classes=("a", "b", "c"), eye_classes=("x", "y"))


def test_saved_heldout_accuracy_meets_the_bar(trained, faces32):
    clf, cache = trained
    assert clf.source == "trained" and clf.path and os.path.dirname(clf.path) == cache
    with open(os.path.join(clf.path, "classifier.json")) as f:
        saved = json.load(f)
    assert os.path.isfile(os.path.join(clf.path, "model.weights.h5"))
    assert saved["heldout"] == clf.heldout
    held = saved["heldout"]
    assert held["count"] == 300 and held["train_images"] == 1700   # 15% of 2,000 faces held out
    assert held["steps"] == tags.DEFAULT_STEPS                      # 1,700 images: not a small set
    assert held["hair"]["accuracy"] >= HAIR_BAR, held["hair"]
    assert held["eye"]["accuracy"] >= EYE_BAR, held["eye"]
    assert set(held["hair"]["per_class"]) == set(faces32.hair_classes)
    assert set(held["eye"]["per_class"]) == set(faces32.eye_classes)
    assert sum(c["count"] for c in held["eye"]["per_class"].values()) == 300


def test_second_call_reads_the_cache(trained, faces32, monkeypatch):
    clf, cache = trained

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(tags, "train_tag_classifier", no_training)
    again = tags.get_tag_classifier(faces32, cache)
    assert again.source == "cache" and again.path == clf.path
    assert again.heldout == clf.heldout
    sample = faces32.images[:64]
    for a, b in zip(again.predict(sample), clf.predict(sample)):
        np.testing.assert_array_equal(a, b)
    # One changed tag is other data: it would be trained (and saved) under another key.
    changed = ImageSet(images=faces32.images, hair=faces32.hair.copy(), eye=faces32.eye,
                       hair_classes=faces32.hair_classes, eye_classes=faces32.eye_classes)
    changed.hair[0] = (changed.hair[0] + 1) % len(changed.hair_classes)
    assert tags.data_key(changed) != tags.data_key(faces32)
    with pytest.raises(AssertionError, match="trained again"):
        tags.get_tag_classifier(changed, cache)


def test_predictions_on_heldout_faces_match_their_tags(trained, faces32):
    clf, _ = trained
    _, held = tags.heldout_split(len(faces32))
    hair, eye = clf.predict(faces32.images[held])
    assert hair.dtype == np.int32 and hair.shape == eye.shape == (300,)
    assert (hair == faces32.hair[held]).mean() >= HAIR_BAR
    assert (eye == faces32.eye[held]).mean() >= EYE_BAR
    # The same numbers as the saved report, and as tag_accuracy computes them.
    assert int((eye == faces32.eye[held]).sum()) == clf.heldout["eye"]["correct"]
    report = tags.tag_accuracy(clf, faces32.images[held], faces32.hair[held], faces32.eye[held])
    assert {k: report[k] for k in ("count", "hair", "eye", "overall")} == \
        {k: clf.heldout[k] for k in ("count", "hair", "eye", "overall")}
    # Asking for the wrong colours is seen as wrong.
    wrong = tags.tag_accuracy(clf, faces32.images[held], (faces32.hair[held] + 1) % 12, faces32.eye[held])
    assert wrong["hair"]["accuracy"] <= 1 - HAIR_BAR and wrong["overall"]["accuracy"] <= 1 - HAIR_BAR


def test_heldout_split_is_fixed_and_disjoint():
    train, held = tags.heldout_split(2000)
    assert len(held) == 300 and len(train) == 1700 and not set(train) & set(held)
    assert sorted(np.concatenate([train, held])) == list(range(2000))
    again = tags.heldout_split(2000)
    np.testing.assert_array_equal(held, again[1])
    assert not np.array_equal(held, tags.heldout_split(2000, seed=1)[1])


class _FixedClassifier:
    """Sees fixed tags, whatever the images."""
    hair_classes, eye_classes = ("red", "blue", "green"), ("black", "gold")

    def __init__(self, hair, eye):
        self.seen = np.array(hair), np.array(eye)

    def predict(self, images, batch_size=256):
        return self.seen


def test_tag_accuracy_per_class_on_a_hand_made_case():
    #            requested hair: red red red blue blue green;  eye: black black gold gold gold black
    hair, eye = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0]
    clf = _FixedClassifier(hair=[0, 1, 0, 1, 1, 0], eye=[0, 0, 1, 0, 1, 0])
    report = tags.tag_accuracy(clf, np.zeros((6, 4, 4, 3), np.uint8), np.array(hair), np.array(eye))
    json.dumps(report)   # JSON-ready
    assert report["count"] == 6
    assert report["hair"]["correct"] == 4 and report["hair"]["accuracy"] == pytest.approx(4 / 6)
    assert report["hair"]["per_class"] == {
        "red": {"accuracy": pytest.approx(2 / 3), "correct": 2, "count": 3},
        "blue": {"accuracy": 1.0, "correct": 2, "count": 2},
        "green": {"accuracy": 0.0, "correct": 0, "count": 1}}
    assert report["hair"]["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["eye"]["per_class"] == {
        "black": {"accuracy": 1.0, "correct": 3, "count": 3},
        "gold": {"accuracy": pytest.approx(2 / 3), "correct": 2, "count": 3}}
    assert report["eye"]["accuracy"] == pytest.approx(5 / 6)
    # Both right: images 0, 2, 4 (image 3 has the hair right but not the eye, 5 the eye but not the hair).
    assert report["overall"] == {"accuracy": 0.5, "correct": 3, "count": 6}
    # A class never asked for has no accuracy, not a division by zero.
    only_red = tags.accuracy_report([0], [0], [0], [1], clf.hair_classes, clf.eye_classes)
    assert only_red["hair"]["per_class"]["blue"] == {"accuracy": None, "correct": 0, "count": 0}
    assert only_red["eye"]["accuracy"] == 0.0


def test_tag_accuracy_rejects_bad_input():
    clf = _FixedClassifier(hair=[0, 1], eye=[0, 1])
    with pytest.raises(ValueError, match="one hair and one eye tag per image"):
        tags.tag_accuracy(clf, np.zeros((2, 4, 4, 3), np.uint8), [0], [0, 1])
    with pytest.raises(ValueError, match=r"hair indices must be in \[0, 3\)"):
        tags.tag_accuracy(clf, np.zeros((2, 4, 4, 3), np.uint8), [0, 3], [0, 1])


def test_untagged_data_raises_one_line_error(tmp_path):
    untagged = _random_set(tagged=False)
    for call in (lambda: tags.get_tag_classifier(untagged, str(tmp_path)),
                 lambda: tags.train_tag_classifier(untagged)):
        with pytest.raises(ValueError, match="needs tagged images") as e:
            call()
        assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []


def test_training_is_reproducible_and_leaves_global_state_alone():
    data = _random_set()
    np_state, py_state = np.random.get_state(), random.getstate()
    determinism = tf_config.is_op_determinism_enabled()
    a = tags.train_tag_classifier(data, steps=4, seed=3)
    b = tags.train_tag_classifier(data, steps=4, seed=3)
    c = tags.train_tag_classifier(data, steps=4, seed=4)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.model.get_weights(), c.model.get_weights()))
    assert a.source == "trained" and a.path is None and a.heldout["count"] == 6
    state = np.random.get_state()
    assert state[0] == np_state[0] and np.array_equal(state[1], np_state[1]) and state[2:] == np_state[2:]
    assert random.getstate() == py_state
    assert tf_config.is_op_determinism_enabled() == determinism


def test_damaged_cache_entry_is_trained_again(tmp_path):
    data = _random_set()
    first = tags.get_tag_classifier(data, str(tmp_path), steps=2)
    assert first.source == "trained"
    assert tags.get_tag_classifier(data, str(tmp_path), steps=2).source == "cache"
    with open(os.path.join(first.path, "model.weights.h5"), "wb") as f:
        f.write(b"not an h5 file")
    again = tags.get_tag_classifier(data, str(tmp_path), steps=2)
    assert again.source == "trained" and again.path == first.path
    assert tags.get_tag_classifier(data, str(tmp_path), steps=2).source == "cache"
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(first.path)]   # no temporary left


def test_small_sets_train_for_at_most_100_passes():
    assert [tags.default_steps(n) for n in (1, 54, 64, 100, 383, 384, 1700)] == [200, 200, 200, 313, 1197, 1200, 1200]
    data = _random_set(n=40)                   # 34 training images: 200 steps, not 1,200
    clf = tags.train_tag_classifier(data)
    assert clf.heldout["steps"] == 200 and clf.heldout["train_images"] == 34
    assert tags.data_key(data) == tags.data_key(data, steps=200) != tags.data_key(data, steps=1200)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            tags.train_tag_classifier(data, steps=bad)


def test_predict_checks_its_input():
    clf = tags.train_tag_classifier(_random_set(), steps=1)
    with pytest.raises(ValueError, match="uint8"):
        clf.predict(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \[N, 16, 16, 3\]"):
        clf.predict(np.zeros((2, 32, 32, 3), np.uint8))
    hair, eye = clf.predict(np.zeros((0, 16, 16, 3), np.uint8))
    assert hair.shape == eye.shape == (0,)


@pytest.mark.skipif(not os.environ.get("GAN_ANIME_SLOW_TESTS"),
                    reason="renders 10,000 faces at 64 px and trains ~40 s: set GAN_ANIME_SLOW_TESTS=1")
def test_heldout_accuracy_at_64px_on_10000_faces(cli_env, tmp_path):
    data, _ = load_data(gan_anime.Config(image_size=64, faces_count=10000, cache_dir=cli_env["GAN_ANIME_CACHE"]))
    held = tags.get_tag_classifier(data, str(tmp_path)).heldout
    assert held["count"] == 1500
    assert held["hair"]["accuracy"] >= HAIR_BAR and held["eye"]["accuracy"] >= EYE_BAR
