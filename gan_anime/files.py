"""Atomic file writes: a killed process or a reader never sees half a file."""

from __future__ import annotations

import os
from typing import Callable, Optional


def atomic_write(path: str, write: Callable[[str], object], suffix: Optional[str] = None) -> str:
    """Call ``write(tmp)`` to write a temporary file beside ``path``, then rename it onto ``path``.

    The temporary name ends in ``suffix`` (default: ``path``'s extension), since writers such as
    imageio, numpy and Keras choose the format, or append an extension, by the name.  Returns ``path``.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    suffix = os.path.splitext(path)[1] if suffix is None else suffix
    tmp = f"{path[:len(path) - len(suffix)] if suffix and path.endswith(suffix) else path}.tmp{os.getpid()}{suffix}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text(path: str, text: str) -> str:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            f.write(text)
    return atomic_write(path, write)
