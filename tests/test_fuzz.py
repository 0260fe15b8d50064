"""Fuzzing (hypothesis): the tags-file parser and the command line, fed generated input, either succeed or
raise the one-line ``ValueError``/``FileNotFoundError`` (the CLI's exit-2 path) — never another exception.

Derandomised (the same examples every run, so CI is repeatable) and without hypothesis' example database
(nothing written into the repository); 10-25 s in all on a 2-core CPU.
"""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_anime.cli import flags as cli_flags
from gan_anime.cli import main as cli_main
from gan_anime.config import Config
from gan_anime.data.tagfile import class_names, match_tags, read_tag_rows

FUZZ = settings(deadline=None, database=None, derandomize=True, max_examples=1000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

#: The images a parsed tags file is matched against: a bare name twice, in subfolders.
IMAGES = ["001.png", "a/001.png", "b/001.png", "a/b/002.jpg", "caf\u00e9.png", "x y.png"]
COLOURS = ["blue", "Blue", "red", "", " ", "pink", "\u00e9carlate", "3"]


def _one_line(error: BaseException) -> None:
    text = str(error)
    assert text and len(text.splitlines()) == 1, repr(text)


# ------------------------------------------------------------------------------------ tags files
_odd_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_names = st.one_of(st.sampled_from(IMAGES + ["./a/001.png", "a\\001.png", "/abs/001.png", "../001.png", "missing.png",
                                             "a//b/002.jpg", ""]), _odd_text)
_colours = st.one_of(st.sampled_from(COLOURS), _odd_text)
_columns = st.one_of(st.sampled_from(["filename", "hair", "eye", "Filename", " HAIR ", "notes", "\ufeffeye", ""]),
                     _odd_text)


def _csv_field(draw, value: str) -> str:
    if draw(st.booleans()) or any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', draw(st.sampled_from(['""', '"']))) + '"'
    return value


@st.composite
def csv_texts(draw) -> bytes:
    """Mostly well-formed CSV (so that parsing, matching and classes are reached), some of it not."""
    header = draw(st.one_of(st.just(["filename", "hair", "eye"]), st.just(["eye", " Filename", "HAIR", "notes"]),
                            st.permutations(["filename", "hair", "eye", "notes"]), st.lists(_columns, max_size=5)))
    width = len(header)
    rows = [header] + draw(st.lists(st.one_of(
        st.tuples(st.sampled_from(IMAGES + ["missing.png", "./a/001.png", "a\\001.png"]),
                  st.sampled_from(COLOURS[:3] + COLOURS[5:]), st.sampled_from(COLOURS[:3] + COLOURS[5:]))
        .map(lambda r: list(r) + ["x"] * max(0, width - 3)),
        st.tuples(_names, _colours, _colours).map(list),
        st.lists(st.one_of(_names, _colours), max_size=5),
        st.just([])), max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [",".join(_csv_field(draw, v) for v in row) for row in rows]
    text = newline.join(lines) + draw(st.sampled_from(["", newline, newline * 3, " "]))
    bom = draw(st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"\xff\xfe"]))
    return bom + text.encode("utf-8", "surrogatepass")


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), _colours, _names)


@st.composite
def json_texts(draw) -> bytes:
    entry = st.dictionaries(st.one_of(st.sampled_from(["filename", "hair", "eye", "notes"]), _odd_text),
                            st.one_of(_json_scalars, st.lists(_json_scalars, max_size=2)), max_size=4)
    good = st.fixed_dictionaries({"filename": _names, "hair": _colours, "eye": _colours})
    plain = st.fixed_dictionaries({"filename": st.sampled_from(IMAGES + ["missing.png"]),
                                   "hair": st.sampled_from(["blue", "red", "pink"]), "eye": st.sampled_from(["red", 7])})
    data = draw(st.one_of(
        st.lists(plain, max_size=6),
        st.dictionaries(st.sampled_from(IMAGES), plain.map(lambda e: {k: v for k, v in e.items() if k != "filename"}),
                        max_size=6),
        st.lists(st.one_of(good, entry, _json_scalars), max_size=6),
        st.dictionaries(_names, st.one_of(good, entry, _json_scalars), max_size=6),
        _json_scalars))
    text = json.dumps(data, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1])))
    if draw(st.integers(0, 9)) == 0:   # now and then a damaged document: a cut, or a key written twice
        text = draw(st.sampled_from([text[:len(text) // 2], text.replace("}", ', "hair": "x"}', 1)]))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return bom + text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def tags_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_tags")


def _parse_and_match(path: str) -> None:
    try:
        rows = read_tag_rows(path)
        assert rows and len({r.name for r in rows}) == len(rows)
        assert all(r.name and r.hair == r.hair.strip() and r.hair and r.eye for r in rows)
        matched = match_tags(rows, IMAGES, "/data", path)
        assert set(matched) <= set(IMAGES)
        kept = list(matched.values())
        hair = class_names(kept, "hair", (), path)
        assert list(hair) == sorted(set(hair))
        class_names(kept, "eye", ("red", "blue"), path)
    except (ValueError, FileNotFoundError) as e:
        _one_line(e)


@FUZZ
@given(content=st.one_of(csv_texts(), st.binary(max_size=64), _odd_text.map(str.encode)))
def test_fuzz_csv_tags(tags_dir, content):
    path = os.path.join(tags_dir, "tags.csv")
    with open(path, "wb") as f:
        f.write(content)
    _parse_and_match(path)


@FUZZ
@given(content=st.one_of(json_texts(), st.binary(max_size=64)))
def test_fuzz_json_tags(tags_dir, content):
    path = os.path.join(tags_dir, "tags.json")
    with open(path, "wb") as f:
        f.write(content)
    _parse_and_match(path)


# ---------------------------------------------------------------------------------- command line
_numbers = st.one_of(st.integers(-10 ** 6, 10 ** 6), st.integers(), st.floats(allow_nan=True, allow_infinity=True))
_values = st.one_of(_numbers.map(str), st.just(""), _odd_text, st.sampled_from(
    ["0", "-1", "16", "32", "1e-4", "2e-4,1e-4", "1 2 3", "1000 2000 : 500", "nan", "inf", "true", "false", "dcgan",
     "wgan-gp", "acgan", "hinge", "batch", "none", "auto", "float32", "bfloat16", "mirrored", "color,cutout",
     "fix-noise", "blonde", ":", ",", "--", "runs", "/", "x/y"]))
_UNKNOWN = ["--batchsize", "--epoch", "--lr", "--gan-type", "--data_dirs", "--fid", "-x", "---train", "--",
            "--flagfile=/nonexistent/flags.txt", "positional", "--no-such-flag", "--noepochs", "--no-train=1"]


def _plausible(name: str):
    """Values a user might well give flag ``name``: its choices, small numbers, number lists."""
    flag = cli_flags.FLAGS[name]
    choices = getattr(flag.parser, "enum_values", None)
    if choices:
        return st.sampled_from(list(choices))
    if name in cli_flags.MULTI_VALUE:
        return st.lists(st.sampled_from(["2e-4", "1e-4", "1000", "2000", "0.9", "1", ":"]), min_size=1,
                        max_size=5).map(" ".join)
    if flag.flag_type() in ("int", "float"):
        return st.sampled_from(["0", "1", "2", "8", "16", "32", "64", "-1", "0.5"])
    return st.sampled_from(["runs/x", "", "/", "tags.csv", "color,translation"])


@st.composite
def argvs(draw):
    names = [n for n in cli_flags.our_flag_names() if n not in ("media",)]
    argv = ["--train"] if draw(st.integers(0, 3)) else []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 19))    # 0-5: hostile, else a value the flag might well get
        if kind == 0:
            argv.append(draw(st.sampled_from(_UNKNOWN)))
            continue
        name = draw(st.sampled_from(names))
        flag = "--" + (name.replace("_", "-") if draw(st.booleans()) else name)
        if kind == 1:
            argv.append(flag)                                   # no value
        elif kind == 2:
            argv.append("--no-" + name.replace("_", "-"))       # a negated switch, or a bad one
        elif kind <= 4:
            argv.append(f"{flag}={draw(_values)}")
        elif kind == 5:
            argv += [flag] + draw(st.lists(_values, min_size=1, max_size=3))
        elif cli_flags.FLAGS[name].boolean:
            argv.append(flag)
        else:
            value = draw(_plausible(name))
            argv += [f"{flag}={value}"] if draw(st.booleans()) or not value else [flag] + value.split(" ")
    return argv


@pytest.fixture(scope="module")
def clean_flags():
    import logging
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    yield
    cli_flags.FLAGS.unparse_flags()   # as parse() itself starts: no test after this one sees these values
    absl_logger.setLevel(level)       # parsing applies absl's --verbosity to its logger (WARNING by default)


@FUZZ
@given(argv=argvs())
def test_fuzz_command_line_to_config(clean_flags, argv):
    """argv -> parsed flags -> routine -> (for --train) the run's Config, all in process and without
    side effects: the CLI's usage-error path (UsageError is a ValueError) or success, nothing else."""
    try:
        rest = cli_flags.parse(["gan-anime", *argv])
        if rest:
            return                      # main() refuses positional arguments with exit 2
        routine = cli_main._routine()
        if routine == "train":
            assert isinstance(cli_main.train_config(), Config)
    except (ValueError, FileNotFoundError) as e:
        _one_line(e)
