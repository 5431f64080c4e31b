"""``trainwise serve``: a run's model behind FastAPI + uvicorn.

The model is loaded once, when the app is created. ``POST /predict`` validates the payload itself (rather than
through a pydantic model) so every kind of bad input gets a specific 4xx message and never reaches the model. Image
runs also take image files, as a raw ``image/*`` body or ``{"images": [base64, ...]}`` (deploy/images.py).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint's annotations at runtime, and
# ``Request`` is imported inside create_app (fastapi is an optional dependency), which string annotations cannot see.
import json
import math
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np

from trainwise.deploy.artifacts import BadRequest, Run, decode, open_run, request_batch, require_supervised
from trainwise.deploy.images import ImageReader
from trainwise.deploy.predict import load_predictor
from trainwise.deploy.text import serve_inputs
from trainwise.errors import TrainwiseError

# Limits on what one request may hold (docs/deploy.md, docs/security.md): checked before the model sees anything.
MAX_BODY_BYTES = 32 * 1024 * 1024  # 4096 samples × 1,000 features as JSON text is ≈ 30 MB
MAX_ABS = 3.4e38  # float32's range: larger numbers (1e39, a 400-digit integer) are refused, not turned into inf


def _flatten(value: Any, out: list[Any], depth: int = 0) -> None:
    if isinstance(value, list):
        if depth > 8:
            raise BadRequest(422, "inputs are nested too deeply")
        for v in value:
            _flatten(v, out, depth + 1)
    else:
        out.append(value)


def parse_inputs(body: bytes, run: Run, max_batch: int, content_type: str = "application/json",
                 images: ImageReader | None = None) -> np.ndarray:
    """The request body → raw inputs of shape (N, *input_shape), or :class:`BadRequest` saying what is wrong.
    ``Content-Type: image/…``: the body is one image file (image runs; deploy/images.py)."""
    prep = run.prep
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(413, f"request body is {len(body):,} bytes; the limit is {MAX_BODY_BYTES:,}")
    if content_type.lower().lstrip().startswith("image/"):
        return (images or ImageReader(run, max_batch)).from_body(body)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:  # ValueError includes ints beyond Python's 4300-digit limit
        raise BadRequest(400, f"body is not valid JSON: {str(exc)[:200]}") from None
    except RecursionError:  # 100,000 nested brackets: the decoder gives up before building anything
        raise BadRequest(400, "body is nested too deeply to be a request") from None
    if isinstance(payload, dict) and "texts" in payload:  # raw strings for a text run (deploy/text.py)
        return serve_inputs(payload, run, max_batch)
    if isinstance(payload, dict) and "images" in payload:  # base64 image files for an image run
        return (images or ImageReader(run, max_batch)).from_json(payload)
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise BadRequest(422, 'body must be a JSON object {"inputs": [[...], ...]}')
    rows = request_batch(payload["inputs"], "inputs", max_batch, "samples (one list of features per sample)",
                         "samples")
    n_features = int(np.prod(prep.input_shape))
    cat_start = prep.num_numeric if prep.kind == "tabular" and prep.cat_columns else n_features
    cat_index = [{name: i + 1 for i, name in enumerate(c)} for c in prep.cat_categories]
    out = np.empty((len(rows), n_features), dtype=run.input_dtype)
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(422, f"inputs[{r}] must be a list of {n_features} numbers, got {type(row).__name__}")
        flat: list[Any] = []
        _flatten(row, flat)
        if len(flat) != n_features:
            raise BadRequest(422, f"inputs[{r}] has {len(flat)} values but the model takes {n_features} "
                                  f"(input shape {list(prep.input_shape)})")
        if cat_start == n_features and prep.kind != "tokens" and set(map(type, flat)) <= {int, float}:
            try:
                values = np.asarray(flat, dtype=np.float64)  # fast path: plain numbers (bool is not int's type)
            except OverflowError:  # an integer beyond float64: the loop below names it
                values = None
            if values is not None and np.isfinite(values).all() and np.abs(values).max() <= MAX_ABS:
                out[r] = values
                continue
        for j, v in enumerate(flat):
            if j >= cat_start:  # categorical column: a category name (unknown → code 0, as in predict) or a code
                if isinstance(v, str):
                    out[r, j] = cat_index[j - cat_start].get(v, 0)
                    continue
                n_codes = len(prep.cat_categories[j - cat_start]) + 1  # 0 = missing/unseen, then one per category
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n_codes:
                    raise BadRequest(422, f"inputs[{r}][{j}] is categorical column "
                                          f"'{prep.cat_columns[j - cat_start]}': give a category name or a code in "
                                          f"0..{n_codes - 1}")
                out[r, j] = v
                continue
            if v is None and prep.kind == "tabular":  # missing numeric value: imputed with the train median
                out[r, j] = np.nan
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise BadRequest(422, f"inputs[{r}][{j}] is {json.dumps(v)[:40]}; every feature must be a number")
            if prep.kind == "tokens":
                if not isinstance(v, int) or not 0 <= v < max(prep.vocab_size, 1):
                    raise BadRequest(422, f"inputs[{r}][{j}] must be a token id in 0..{prep.vocab_size - 1}")
            elif abs(v) > MAX_ABS:  # compared before isfinite: a 400-digit int overflows converting to float
                raise BadRequest(422, f"inputs[{r}][{j}] does not fit in float32")
            elif not math.isfinite(v):
                raise BadRequest(422, f"inputs[{r}][{j}] is not a finite number")
            out[r, j] = v
    return out.reshape(len(rows), *prep.input_shape)


def create_app(run_dir: str | Path, fmt: str = "eager", max_batch: int = 4096, threads: int | None = None) -> Any:
    """The FastAPI app for one run; the model (eager, ONNX or int8) is loaded here, once."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse
        from starlette.concurrency import run_in_threadpool
    except ImportError:
        raise TrainwiseError("serving needs fastapi and uvicorn; pip install 'trainwise[deploy]'") from None
    if max_batch < 1:
        raise TrainwiseError("--max-batch must be ≥ 1")
    run = open_run(run_dir)
    require_supervised(run, "serve")
    predictor = load_predictor(run, fmt, threads)
    prep = run.prep
    info = {"status": "ok", "run_dir": str(run.run_dir), "model": run.model_name, "format": predictor.format,
            "backend": predictor.backend, "task": prep.task, "input_shape": list(prep.input_shape),
            "features": int(np.prod(prep.input_shape)), "classes": list(prep.class_names), "max_batch": max_batch}
    app = FastAPI(title=f"trainwise: {run.model_name} from {run.run_dir.name}", version="1")

    images = ImageReader(run, max_batch)  # keeps the training value range once computed

    def infer(x: np.ndarray) -> dict[str, Any]:
        predictions, probs = decode(predictor.outputs(x), prep)
        return {"predictions": predictions, "probabilities": probs.tolist() if probs is not None else None}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return info

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        body, content_type = await request.body(), request.headers.get("content-type", "application/json")
        try:  # off the event loop too: decoding images takes a while, and /health must stay responsive
            x = await run_in_threadpool(parse_inputs, body, run, max_batch, content_type, images)
        except BadRequest as exc:
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        return await run_in_threadpool(infer, x)  # the model runs off the event loop: /health stays responsive

    app.state.run = run
    app.state.predictor = predictor
    return app


def _check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise TrainwiseError(f"--port {port} is not a TCP port (1..65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TrainwiseError(f"--host '{host}' cannot be resolved ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "in use"
        try:
            s.bind(addr)
        except OSError as exc:
            raise TrainwiseError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, fmt: str = "eager",
          max_batch: int = 4096, threads: int | None = None) -> None:
    try:
        import uvicorn
    except ImportError:
        raise TrainwiseError("serving needs fastapi and uvicorn; pip install 'trainwise[deploy]'") from None
    app = create_app(run_dir, fmt, max_batch, threads)  # a bad run directory is the first thing to report
    _check_port(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(f"warning: listening on {host}: other machines can reach this server; it has no "
                         "authentication\n")
    sys.stderr.write(f"serving {app.state.run.model_name} ({app.state.predictor.format}) from {app.state.run.run_dir} "
                     f"on http://{host}:{port}  (POST /predict, GET /health; Ctrl-C stops)\n")
    uvicorn.run(app, host=host, port=port, log_level="info")
