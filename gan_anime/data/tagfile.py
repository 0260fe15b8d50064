"""Tags files: the hair and eye colour of each image in a folder (README, "Tags files").

Rules, each broken one a one-line ``ValueError`` naming the file, the line (CSV) or entry (JSON)
and what is expected:

* CSV (any name but ``*.json``), UTF-8 with or without a BOM: a header row naming the columns
  ``filename``, ``hair`` and ``eye`` in any order (case and spaces around names ignored); other
  named columns are ignored; every row has as many fields as the header; blank lines are skipped.
* JSON (``*.json``): ``{"a/001.png": {"hair": "blue", "eye": "red"}, ...}`` or
  ``[{"filename": "a/001.png", "hair": "blue", "eye": "red"}, ...]``; other keys are ignored.
* filename, hair and eye are non-empty text (a JSON integer counts as its digits).
* filename is the image's path relative to the data folder (``a/001.png``; ``\\`` works as ``/``);
  a bare name (``001.png``) also works when exactly one image under the folder has it, and is an
  error naming the candidates when several do.
* A file named twice with the same tags: the repeat is ignored (one warning with the count); with
  different tags: an error naming both lines.
* Rows naming no image under the folder, and images without a row, are skipped: one warning each
  with the count and an example.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import posixpath
import unicodedata
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging

REQUIRED = ("filename", "hair", "eye")
#: Unicode categories a colour name may not contain: controls, format characters, line separators.
_INVISIBLE = ("Cc", "Cf", "Zl", "Zp")
EXPECTED = "CSV with a header row filename,hair,eye, or JSON (see README, Tags files)"


@dataclasses.dataclass(frozen=True)
class TagRow:
    """One row of a tags file: ``name`` normalised (``/`` separators, no ``./``), ``where`` for
    messages (``line 3`` of a CSV, ``entry 3`` of a JSON file)."""

    name: str
    hair: str
    eye: str
    where: str


def _show(value: object, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters: one line whatever the value holds."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def _pair(row: "TagRow") -> str:
    return f"hair {_show(row.hair)}, eye {_show(row.eye)}"


def normalise_name(name: str) -> str:
    """A filename as written in a tags file -> the form image paths are compared in."""
    name = name.strip().replace("\\", "/")
    return posixpath.normpath(name) if name else name


# --------------------------------------------------------------------------------------- parsing
def _csv_rows(text: str, path: str) -> List[TagRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: Optional[List[str]] = None
    rows: List[TagRow] = []
    try:
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue                      # blank line
            line = reader.line_num
            if header is None:
                header = [f.strip().strip("\ufeff").strip().lower() for f in fields]
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    raise ValueError(f"tags file {path} needs a header with filename,hair,eye (line {line} "
                                     f"lacks {','.join(missing)}); got {_show(fields)}")
                doubled = sorted({c for c in REQUIRED if header.count(c) > 1})
                if doubled:
                    raise ValueError(f"tags file {path} line {line}: column {','.join(doubled)} is named twice "
                                     f"in the header; expected each of filename,hair,eye once")
                columns = [header.index(c) for c in REQUIRED]
                continue
            if len(fields) != len(header):
                raise ValueError(f"tags file {path} line {line}: {len(fields)} field(s), expected {len(header)} "
                                 f"like the header ({','.join(header)}); got {_show(fields)}")
            rows.append(_row([fields[i] for i in columns], f"line {line}", path))
    except csv.Error as e:
        raise ValueError(f"tags file {path} line {reader.line_num}: not valid CSV ({e})") from None
    if header is None:
        raise ValueError(f"tags file {path} is empty; expected {EXPECTED}")
    return rows


class _Pairs(list):
    """A JSON object as its (key, value) pairs, so that a key written twice is seen, not dropped."""


def _json_rows(text: str, path: str) -> List[TagRow]:
    try:
        data = json.loads(text, object_pairs_hook=_Pairs)
    except RecursionError:
        raise ValueError(f"tags file {path} is nested too deeply; expected {EXPECTED}") from None
    except ValueError as e:   # JSONDecodeError, or an integer too long to convert
        raise ValueError(f"tags file {path} is not valid JSON ({' '.join(str(e).split())})") from None
    if isinstance(data, _Pairs):   # {"name": {"hair": ..., "eye": ...}}
        entries = [(f"entry {i} ({_show(k)})", {**_fields(v, f"entry {i}", path), "filename": k})
                   for i, (k, v) in enumerate(data, 1)]
    elif isinstance(data, list):   # [{"filename": ..., "hair": ..., "eye": ...}]
        entries = [(f"entry {i}", _fields(v, f"entry {i}", path)) for i, v in enumerate(data, 1)]
    else:
        raise ValueError(f"tags file {path}: expected a JSON object or list of entries, got "
                         f"{type(data).__name__}")
    rows = []
    for where, entry in entries:
        missing = [c for c in REQUIRED if c not in entry]
        if missing:
            raise ValueError(f"tags file {path} {where}: lacks {','.join(missing)}; every entry needs "
                             f"filename, hair and eye")
        rows.append(_row([_text(entry[c], c, where, path) for c in REQUIRED], where, path))
    return rows


def _fields(value: object, where: str, path: str) -> dict:
    if not isinstance(value, _Pairs):
        raise ValueError(f"tags file {path} {where}: expected an object with hair and eye, got "
                         f"{_show(value)}")
    out: dict = {}
    for key, v in value:
        if key in out and key in REQUIRED:
            raise ValueError(f"tags file {path} {where}: {key} is given twice")
        out[key] = v
    return out


def _text(value: object, column: str, where: str, path: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"tags file {path} {where}: {column} must be text, got {_show(value)}")


def _row(values: Sequence[str], where: str, path: str) -> TagRow:
    name, hair, eye = (v.strip() for v in values)
    for column, value in zip(REQUIRED, (name, hair, eye)):
        if not value:
            raise ValueError(f"tags file {path} {where}: {column} is empty; expected filename,hair,eye "
                             f"all filled in")
    for column, value in (("hair", hair), ("eye", eye)):
        # A colour is a class name (config.json, grid labels, --hair): invisible characters would make
        # two classes look like one.
        if any(unicodedata.category(c) in _INVISIBLE for c in value):
            raise ValueError(f"tags file {path} {where}: {column} {_show(value)} holds a control or invisible "
                             f"character; expected a plain colour name")
    return TagRow(normalise_name(name), hair, eye, where)


def read_tag_rows(path: str) -> List[TagRow]:
    """The rows of tags file ``path`` (format in the module docstring), a repeated identical row
    dropped (one warning), or ``FileNotFoundError``/``ValueError`` with one line saying what is wrong."""
    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"tags file {path} {what} (expected {EXPECTED})")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"tags file {path} is not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); "
                         f"save it as UTF-8") from None
    rows = _json_rows(text, path) if path.lower().endswith(".json") else _csv_rows(text, path)
    if not rows:
        raise ValueError(f"tags file {path} has no rows; expected one row per image: filename,hair,eye")
    return _drop_repeats(rows, path)


def _drop_repeats(rows: List[TagRow], path: str, data_dir: Optional[str] = None) -> List[TagRow]:
    """Rows with each name once: an identical repeat is dropped, a different one is an error."""
    first: Dict[str, TagRow] = {}
    kept, repeats = [], []
    for row in rows:
        seen = first.get(row.name)
        if seen is None:
            first[row.name] = row
            kept.append(row)
        elif (seen.hair, seen.eye) == (row.hair, row.eye):
            repeats.append((row, seen))
        else:
            under = f" under {data_dir}" if data_dir else ""
            raise ValueError(f"tags file {path}: {seen.where} and {row.where} tag the same image "
                             f"{_show(seen.name)}{under} differently ({_pair(seen)} and {_pair(row)}); keep "
                             f"one row per image")
    if repeats:
        row, seen = repeats[0]
        logging.warning("tags file %s: ignored %d repeated row(s) (e.g. %s repeats %s)", path, len(repeats),
                        row.where, seen.where)
    return kept


def read_tags(path: str) -> Dict[str, Tuple[str, str]]:
    """{filename: (hair, eye)} of tags file ``path`` (see :func:`read_tag_rows`)."""
    return {row.name: (row.hair, row.eye) for row in read_tag_rows(path)}


# -------------------------------------------------------------------------------------- matching
def match_tags(rows: Sequence[TagRow], paths: Sequence[str], data_dir: str,
               tags_path: str) -> Dict[str, TagRow]:
    """{image path: its row} for the images ``paths`` (relative to ``data_dir``) that have a row.

    A row matches the image at its path relative to ``data_dir`` (an absolute path inside
    ``data_dir`` works too), or the one image whose file name it is.  Rows naming no image and
    images without a row are skipped with one warning each.
    """
    posix = {p.replace(os.sep, "/"): p for p in paths}
    by_base: Dict[str, List[str]] = {}
    for p in posix:
        by_base.setdefault(posixpath.basename(p), []).append(p)
    root = os.path.abspath(data_dir)
    resolved: List[TagRow] = []
    unmatched: List[TagRow] = []
    for row in rows:
        name = row.name
        if os.path.isabs(name):
            name = posixpath.normpath(os.path.relpath(name, root).replace(os.sep, "/"))
        if name in posix:
            resolved.append(dataclasses.replace(row, name=name))
        elif "/" not in name and name in by_base:
            candidates = by_base[name]
            if len(candidates) > 1:
                shown = ", ".join(_show(c) for c in candidates[:3]) + (" ..." if len(candidates) > 3 else "")
                raise ValueError(f"tags file {tags_path} {row.where}: {_show(name)} matches {len(candidates)} "
                                 f"images under {data_dir} ({shown}); write the path relative to the folder")
            resolved.append(dataclasses.replace(row, name=candidates[0]))
        else:
            unmatched.append(row)
    matched = {posix[r.name]: r for r in _drop_repeats(resolved, tags_path, data_dir)}
    if unmatched:
        logging.warning("tags file %s: skipped %d row(s) naming no image under %s (e.g. %s: %s)", tags_path,
                        len(unmatched), data_dir, unmatched[0].where, _show(unmatched[0].name))
    untagged = [p for p in paths if p not in matched]
    if untagged and matched:
        logging.warning("skipped %d image(s) under %s that have no row in %s (e.g. %s)", len(untagged), data_dir,
                        tags_path, _show(untagged[0]))
    return matched


# --------------------------------------------------------------------------------------- classes
def class_names(rows: Sequence[TagRow], column: str, given: Sequence[str], tags_path: str) -> Tuple[str, ...]:
    """The classes of ``column`` (hair or eye): ``given`` (a resumed run's or the built-in faces'
    order), every value then having to be one of them; else the values found, sorted.  Two
    spellings that differ only in case are an error rather than two classes."""
    if given:
        valid = set(given)
        for row in rows:
            value = getattr(row, column)
            if value not in valid:
                raise ValueError(f"tags file {tags_path} {row.where}: {column} colour {_show(value)} is not one "
                                 f"of this run's {column} colours ({', '.join(given)})")
        return tuple(given)
    spelling: Dict[str, TagRow] = {}
    for row in rows:
        value = getattr(row, column)
        other = spelling.setdefault(value.casefold(), row)
        if getattr(other, column) != value:
            raise ValueError(f"tags file {tags_path}: {column} colours {_show(getattr(other, column))} "
                             f"({other.where}) and {_show(value)} ({row.where}) differ only in case; write "
                             f"one spelling")
    return tuple(sorted({getattr(row, column) for row in rows}))
