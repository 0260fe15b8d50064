"""config.json edited by hand: any value of any field gives a Config or one ValueError line, never a traceback."""

import json
import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from gan_anime.config import Config, validate  # noqa: E402

FIELDS = sorted(Config().to_dict())
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)


def load_checked(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    try:
        return validate(Config.load(str(path)))
    except ValueError as e:
        text = str(e)
        assert text and "\n" not in text, repr(text)
        return None


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.sampled_from(FIELDS + ["no_such_field"]), JSON_VALUES), min_size=1, max_size=3),
       drop=st.lists(st.sampled_from(FIELDS), max_size=2))
def test_any_hand_edit_is_a_config_or_one_line(tmp_path, edits, drop):
    data = {**Config().to_dict(), "version": 1}
    for key, value in edits:
        data[key] = value
    for key in drop:
        data.pop(key, None)
    cfg = load_checked(tmp_path, data)
    if cfg is not None:   # what loads is a usable config: it writes and reads back the same
        cfg.save(str(tmp_path / "again.json"))
        assert Config.load(str(tmp_path / "again.json")) == cfg


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("[1, 2]", "config must be a JSON object"),
    ('{"epochs": "ten"}', "epochs must be an integer"),
    ('{"g_schedule": 5}', "g_schedule"),
    ('{"g_schedule": {"kind": "cosine"}}', "unknown schedule kind"),
    ('{"g_schedule": {"initial_lr": 1e-4, "warmup": 3}}', "g_schedule"),
    ('{"hair_classes": 7}', "hair_classes"),
    ('{"lr_scale": NaN}', "lr_scale must be a positive number"),
    ('{"top_k": 0}', "top_k must be a number in \\(0, 1\\]"),
    ('{"top_k": NaN}', "top_k must be a number in"),
    ('{"top_k_decay": 1.5}', "top_k_decay must be a number in"),
    ('{"top_k": true}', "top_k"),
    ('{"lecam": -0.1}', "lecam must be a number >= 0"),
    ('{"lecam": "0.3"}', "lecam"),
    ('{"lecam_decay": 1.0}', "lecam_decay must be in \\[0, 1\\)"),
])
def test_typical_hand_edits_name_the_field(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        validate(Config.load(str(path)))


def test_a_run_saved_before_g_depth_existed_loads_as_it_was_built(tmp_path):
    """g_depth came later: a config.json without it describes a generator with one convolution per
    resolution, whatever today's default is; one that names it keeps its value."""
    data = Config(g_depth=3).to_dict()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "g_depth"}))
    assert Config.load(str(path)).g_depth == 1
    path.write_text(json.dumps(data))
    assert Config.load(str(path)).g_depth == 3
