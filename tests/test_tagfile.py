"""Tags files: every broken rule is one line naming the file, the line and what is expected; rows for
missing files and images without a row are counted skips; rows match by the path in the folder."""

import json

import numpy as np
import pytest
from absl import logging
from PIL import Image

from gan_anime.data.folder import load_folder, read_tags
from gan_anime.data.tagfile import read_tag_rows


@pytest.fixture()
def folder(tmp_path):
    """a/001.png, b/001.png (same name in two folders), 002.png and c/003.png: 16 px images."""
    d = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for name in ("a/001.png", "b/001.png", "002.png", "c/003.png"):
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / name)
    return d


def _write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return str(p)


def _one_line(error):
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    return message


@pytest.mark.parametrize("content, message", [
    ("filename,hair\n002.png,blue\n", r"t\.csv needs a header with filename,hair,eye \(line 1 lacks eye\)"),
    ("002.png,blue,red\n", "needs a header with filename,hair,eye"),
    ("filename,hair,eye\n002.png,blue\n", r"t\.csv line 2: 2 field\(s\), expected 3 like the header"),
    ("filename,hair,eye\n\n002.png,blue,red,x\n", r"t\.csv line 3: 4 field\(s\), expected 3"),
    ("filename,hair,hair,eye\n002.png,a,b,c\n", "column hair is named twice"),
    ("filename,hair,eye\n002.png,,red\n", "line 2: hair is empty"),
    ("filename,hair,eye\n , blue, red\n", "line 2: filename is empty"),
    ("filename,hair,eye\n002.png,blue,red\n002.png,pink,red\n",
     r"line 2 and line 3 tag the same image '002.png' differently \(hair 'blue', eye 'red' and hair 'pink', "
     r"eye 'red'\)"),
    ("filename,hair,eye\n002.png,bl\x0cue,red\n", r"line 2: hair 'bl\\x0cue' holds a control or invisible"),
    ("", "is empty; expected CSV with a header row"),
    ("filename,hair,eye\n\n  \n", "has no rows"),
    (b"filename,hair,eye\n\xff01.png,blue,red\n", r"not UTF-8 text \(byte 0xff at offset 18\)"),
])
def test_bad_csv_is_one_line_naming_file_and_line(tmp_path, content, message):
    with pytest.raises(ValueError, match=message) as e:
        read_tags(_write(tmp_path, content))
    assert "t.csv" in _one_line(e)


@pytest.mark.parametrize("content, message", [
    ("{", "is not valid JSON"),
    ('"just text"', "expected a JSON object or list of entries, got str"),
    ('[{"filename": "a.png", "hair": "blue"}]', "entry 1: lacks eye"),
    ('[{"filename": "a.png", "hair": null, "eye": "red"}]', "entry 1: hair must be text, got None"),
    ('{"a.png": "blue"}', "entry 1: expected an object with hair and eye"),
    ('{"a.png": {"hair": "blue", "hair": "pink", "eye": "red"}}', "entry 1: hair is given twice"),
    ('{"a.png": {"hair": "blue", "eye": "red"}, "a.png": {"hair": "pink", "eye": "red"}}',
     r"entry 1 \('a.png'\) and entry 2 \('a.png'\) tag the same image"),
    ("[]", "has no rows"),
    ("[" * 100000, "nested too deeply|not valid JSON"),
    ("[" + "1" * 5000 + "]", "not valid JSON"),
])
def test_bad_json_is_one_line_naming_file_and_entry(tmp_path, content, message):
    with pytest.raises(ValueError, match=message) as e:
        read_tags(_write(tmp_path, content, "t.json"))
    assert "t.json" in _one_line(e)


def test_missing_tags_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="tags file .*nope.csv does not exist"):
        read_tags(str(tmp_path / "nope.csv"))
    with pytest.raises(FileNotFoundError, match="is a folder, not a file"):
        read_tags(str(tmp_path))


def test_lenient_where_nothing_is_ambiguous(tmp_path, caplog):
    """A BOM, header case and spaces, blank lines, quoted fields, extra named columns and an
    identical repeated row are all fine; the repeat is counted in one warning."""
    caplog.set_level(logging.WARNING)
    text = ('\ufeff Filename , HAIR,eye,notes\r\n\r\n"a/0,1.png",blue,red,"said ""hi"""\r\n'
            "b\\001.png, pink ,red,\r\n./c/003.png,blue,red,x\r\nc/003.png,blue,red,y\r\n")
    rows = read_tag_rows(_write(tmp_path, text))
    assert [(r.name, r.hair, r.eye, r.where) for r in rows] == [
        ("a/0,1.png", "blue", "red", "line 3"), ("b/001.png", "pink", "red", "line 4"),
        ("c/003.png", "blue", "red", "line 5")]
    assert "ignored 1 repeated row(s) (e.g. line 6 repeats line 5)" in caplog.text
    as_json = _write(tmp_path, json.dumps([{"filename": "002.png", "hair": 3, "eye": "red", "extra": [1]}]), "t.json")
    assert read_tags(as_json) == {"002.png": ("3", "red")}


def test_rows_match_paths_in_the_folder_not_basenames(folder, tmp_path):
    tags = _write(tmp_path, "filename,hair,eye\na/001.png,blue,red\nb/001.png,pink,red\n003.png,blue,green\n"
                            f"{folder}/002.png,pink,green\n")
    data = load_folder(str(folder), 16, tags)
    # sorted paths: 002.png, a/001.png, b/001.png, c/003.png; 003.png is unambiguous, 002.png absolute
    assert data.hair_classes == ("blue", "pink") and data.eye_classes == ("green", "red")
    assert list(data.hair) == [1, 0, 1, 0] and list(data.eye) == [0, 1, 1, 0]


def test_an_ambiguous_bare_name_names_the_candidates(folder, tmp_path):
    tags = _write(tmp_path, "filename,hair,eye\n002.png,blue,red\n001.png,pink,red\n")
    with pytest.raises(ValueError, match=r"t\.csv line 3: '001.png' matches 2 images under .*imgs "
                                         r"\('a/001.png', 'b/001.png'\); write the path relative") as e:
        load_folder(str(folder), 16, tags)
    _one_line(e)


def test_two_spellings_of_one_image_must_agree(folder, tmp_path):
    tags = _write(tmp_path, "filename,hair,eye\nc/003.png,blue,red\n003.png,pink,red\n")
    with pytest.raises(ValueError, match="line 2 and line 3 tag the same image 'c/003.png' under .*imgs differently"):
        load_folder(str(folder), 16, tags)
    same = _write(tmp_path, "filename,hair,eye\nc/003.png,blue,red\n003.png,blue,red\n")
    assert len(load_folder(str(folder), 16, same)) == 1


def test_rows_without_files_and_files_without_rows_are_counted_skips(folder, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    tags = _write(tmp_path, "filename,hair,eye\nmissing.png,blue,red\n002.png,blue,red\nx/9.png,pink,red\n")
    data = load_folder(str(folder), 16, tags)
    assert len(data) == 1 and data.hair_classes == ("blue",)   # the rows for missing files add no class
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("skipped 2 row(s) naming no image under" in w and "(e.g. line 2: 'missing.png')" in w
               for w in warnings) == 1
    assert sum("skipped 3 image(s) under" in w and "(e.g. 'a/001.png')" in w for w in warnings) == 1
    nothing = _write(tmp_path, "filename,hair,eye\nmissing.png,blue,red\n")
    with pytest.raises(ValueError, match="no image under .* is named in tags file"):
        load_folder(str(folder), 16, nothing)


def test_unknown_colours_list_the_valid_ones(folder, tmp_path):
    tags = _write(tmp_path, "filename,hair,eye\n002.png,blue,red\nc/003.png,teal,red\n")
    with pytest.raises(ValueError, match=r"t\.csv line 3: hair colour 'teal' is not one of this run's hair "
                                         r"colours \(blue, pink\)") as e:
        load_folder(str(folder), 16, tags, hair_classes=("blue", "pink"), eye_classes=("red",))
    _one_line(e)


def test_colours_differing_only_in_case_are_an_error(folder, tmp_path):
    tags = _write(tmp_path, "filename,hair,eye\n002.png,blue,red\nc/003.png,Blue,red\n")
    with pytest.raises(ValueError, match=r"hair colours 'blue' \(line 2\) and 'Blue' \(line 3\) differ only in case"):
        load_folder(str(folder), 16, tags)
