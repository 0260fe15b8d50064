"""A local web page and a JSON + PNG API over a trained run: faces by seed and colour, and interpolations.

>>> import gan_anime
>>> from gan_anime.serve.app import create_app
>>> app = create_app(gan_anime.load("runs/default"))      # a FastAPI app; gan_anime.serve.server runs it

Routes (every query parameter is checked; a bad one is answered 400 with
``{"error": "<parameter>: expected ..., got ...", "parameter": ..., "expected": ...}``):

* ``GET /`` — the page (``page.html``: colour pickers, seed box, random, interpolate, download).
* ``GET /api/info`` — JSON: the run's image size, whether it is conditional, its colour names, the limits.
* ``GET /api/faces?seed=S&count=N&hair=H&eye=E&scale=K`` — PNG grid of ``generate(N, seed=S, hair=H, eye=E)``
  (seed 0..MAX_SEED, default 0; count 1..MAX_COUNT, default 16; hair/eye: a colour name, absent or empty for
  the seed's own; scale 1..MAX_SCALE, default 1: nearest-neighbour enlargement).
* ``GET /api/faces.json?...`` — the same faces as JSON: ``{"seed", "count", "hair", "eye", "image_size",
  "images": [base64 PNG of each face]}``.
* ``GET /api/interpolate?seed_a=A&seed_b=B&steps=K&hair=&eye=&scale=`` — PNG strip of K faces (2..MAX_STEPS,
  default 8) walking from seed A's first face to seed B's (``GanRun.interpolate``); ``/api/interpolate.json``:
  the same as JSON.

The run is loaded once, before the app is made; generation runs under a lock (one generator call at a time),
so concurrent requests each get exactly the faces a request alone would get.
"""

import base64
import io
import os
import re
import threading
from typing import Callable, Dict, Optional

import numpy as np

MAX_COUNT = 64
MAX_STEPS = 64
MAX_SCALE = 8
MAX_SEED = 2 ** 32 - 1
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.html")


class BadParameter(ValueError):
    """A query parameter that does not fit: answered with HTTP 400 and this JSON."""

    def __init__(self, name: str, expected: str, got: Optional[str] = None, problem: Optional[str] = None):
        self.name, self.expected = name, expected
        shown = "" if got is None else f", got {got[:40]!r}" + ("..." if len(got) > 40 else "")
        text = f"{problem}; expected {expected}" if problem else f"expected {expected}{shown}"
        super().__init__(f"{name}: {text}")

    def body(self) -> dict:
        return {"error": str(self), "parameter": self.name, "expected": self.expected}


def integer(low: int, high: int) -> Callable[[str, str], int]:
    def parse(name: str, text: str) -> int:
        expected = f"an integer from {low} to {high}"
        if not re.fullmatch(r"[0-9]{1,20}", text) or not low <= int(text) <= high:
            raise BadParameter(name, expected, text)
        return int(text)
    return parse


def colour(classes) -> Callable[[str, str], Optional[str]]:
    def parse(name: str, text: str) -> Optional[str]:
        if not classes:
            raise BadParameter(name, "no colour: this run was trained without hair and eye tags", text)
        if text == "":
            return None
        if text not in classes:
            raise BadParameter(name, f"one of {', '.join(classes)} (or empty for the seed's own)", text)
        return text
    return parse


def parse_query(items, spec: Dict[str, tuple]) -> dict:
    """``items``: the query's (name, value) pairs; ``spec``: name -> (parser, default).  Unknown and repeated
    parameters are refused too."""
    seen: Dict[str, str] = {}
    for name, value in items:
        if name not in spec:
            raise BadParameter(name, f"one of {', '.join(spec)}", problem="unknown parameter")
        if name in seen:
            raise BadParameter(name, "one value", f"{seen[name]}, {value}")
        seen[name] = value
    return {name: parser(name, seen[name]) if name in seen else default for name, (parser, default) in spec.items()}


def png_bytes(image) -> bytes:
    """A PIL image or uint8 [H, W, 3] array as PNG bytes."""
    from PIL import Image
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def enlarge(image, scale: int):
    from PIL import Image
    return image if scale == 1 else image.resize((image.width * scale, image.height * scale), Image.NEAREST)


class FaceService:
    """The generator behind the app: one call at a time (a lock), results a pure function of the arguments."""

    def __init__(self, run):
        self.run = run
        self._lock = threading.Lock()
        self.hair_classes = tuple(run.hair_classes) if run.config.conditional else ()
        self.eye_classes = tuple(run.eye_classes) if run.config.conditional else ()

    def faces(self, seed: int, count: int, hair=None, eye=None) -> np.ndarray:
        with self._lock:
            return self.run.generate(count, seed=seed, hair=hair, eye=eye)

    def interpolate(self, seed_a: int, seed_b: int, steps: int, hair=None, eye=None) -> np.ndarray:
        with self._lock:
            return self.run.interpolate([seed_a, seed_b], frames=steps - 1, hair=hair, eye=eye)

    def info(self) -> dict:
        cfg = self.run.config
        return {"run": os.path.basename(os.path.normpath(self.run.run_dir)), "image_size": cfg.image_size,
                "conditional": bool(cfg.conditional), "hair_classes": list(self.hair_classes),
                "eye_classes": list(self.eye_classes), "max_count": MAX_COUNT, "max_steps": MAX_STEPS,
                "max_scale": MAX_SCALE, "max_seed": MAX_SEED}


def create_app(run):
    """The FastAPI app serving ``run`` (a loaded :class:`gan_anime.inference.GanRun`)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse, Response

    service = FaceService(run)
    service.faces(0, 1)   # trace the generator now, not in the first request
    app = FastAPI(title="gan_anime faces", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    seed = integer(0, MAX_SEED)
    common = {"hair": (colour(service.hair_classes), None), "eye": (colour(service.eye_classes), None),
              "scale": (integer(1, MAX_SCALE), 1)}
    faces_spec = {"seed": (seed, 0), "count": (integer(1, MAX_COUNT), 16), **common}
    interp_spec = {"seed_a": (seed, 0), "seed_b": (seed, 1), "steps": (integer(2, MAX_STEPS), 8), **common}

    @app.exception_handler(BadParameter)
    def bad_parameter(request: Request, error: BadParameter):
        return JSONResponse(error.body(), status_code=400)

    def faces_of(request: Request):
        q = parse_query(request.query_params.multi_items(), faces_spec)
        return q, service.faces(q["seed"], q["count"], q["hair"], q["eye"])

    def interpolation_of(request: Request):
        q = parse_query(request.query_params.multi_items(), interp_spec)
        return q, service.interpolate(q["seed_a"], q["seed_b"], q["steps"], q["hair"], q["eye"])

    def as_png(images, cols, scale) -> Response:
        return Response(png_bytes(enlarge(run.grid(images, cols), scale)), media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    def as_json(q, images) -> dict:
        from PIL import Image
        encoded = [base64.b64encode(png_bytes(enlarge(Image.fromarray(im), q["scale"]))).decode("ascii")
                   for im in images]
        return {**q, "image_size": run.config.image_size, "images": encoded}

    @app.get("/")
    def page():
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/api/info")
    def info():
        return service.info()

    @app.get("/api/faces")
    def faces_png(request: Request):
        q, images = faces_of(request)
        return as_png(images, None, q["scale"])

    @app.get("/api/faces.json")
    def faces_json(request: Request):
        return as_json(*faces_of(request))

    @app.get("/api/interpolate")
    def interpolate_png(request: Request):
        q, images = interpolation_of(request)
        return as_png(images, len(images), q["scale"])

    @app.get("/api/interpolate.json")
    def interpolate_json(request: Request):
        return as_json(*interpolation_of(request))

    return app


__all__ = ["create_app", "FaceService", "BadParameter", "parse_query", "MAX_COUNT", "MAX_STEPS", "MAX_SEED",
           "MAX_SCALE"]
