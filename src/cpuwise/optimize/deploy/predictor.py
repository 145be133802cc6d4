"""Serve an optimized model with the tricks that were measured: `cpuwise.optimize.load(path).predict(x)`.

The Predictor builds the runtime's session with the chosen settings, tokenises text when the artifact
carries a tokenizer, pads each batch only to its real length (bucketed), sorts long inputs into batches
of similar length, and answers repeated inputs from a byte-bounded LRU cache.

    p = cpuwise.optimize.load("minilm-opt")
    vectors = p.predict(["How do I read a file?", "Return the sum of a list."])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cpuwise._optional import require
from cpuwise.errors import ConfigError
from cpuwise.optimize import runtimes
from cpuwise.optimize.deploy.artifact import RunConfig, read
from cpuwise.optimize.deploy.batcher import MicroBatcher
from cpuwise.optimize.deploy.cache import PredictionCache, content_key
from cpuwise.optimize.inputs import check_feed, pad_encodings, to_numpy
from cpuwise.optimize.io import Feed, lengths, run_all, take


class Predictor:
    """Runs an optimized artifact; see the module docstring."""

    def __init__(self, folder: Path, cfg: RunConfig, *, cache: bool = True) -> None:
        self.folder, self.config = folder, cfg
        runtime = runtimes.get(cfg.runtime)
        self.session = runtime.session(folder / cfg.model, cfg.session)
        self._run = runtime.runner(self.session)
        self.input_names = [i["name"] for i in cfg.inputs]
        self.cache = PredictionCache(cfg.cache_max_bytes) if cache and cfg.cache_max_bytes > 0 else None
        self.tokenizer = None
        if cfg.tokenizer:
            tk = require("tokenizers", purpose="tokenising text inputs")
            self.tokenizer = tk.Tokenizer.from_file(str(folder / cfg.tokenizer))
            self.tokenizer.no_padding()
            self.tokenizer.enable_truncation(max_length=cfg.max_length or 512)

    def to_feed(self, inputs: Any) -> Feed:
        """Text (with a tokenizer), a dict of arrays, a tuple of arrays in input order, or one array."""
        if isinstance(inputs, str):
            inputs = [inputs]
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], str):
            return self._tokenise(inputs)
        if isinstance(inputs, dict):
            extra = sorted(set(inputs) - set(self.input_names))
            if extra:
                raise ConfigError(
                    f"predict(): unexpected input {extra[0]!r}: expected the inputs {self.input_names}, "
                    f"found {sorted(inputs)}"
                )
            feed = {k: to_numpy(v) for k, v in inputs.items()}
        else:
            arrays = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
            if len(arrays) != len(self.input_names):
                raise ConfigError(
                    f"predict(): expected {len(self.input_names)} input(s) {self.input_names}, found "
                    f"{len(arrays)}; fix: pass one array per input, in that order (or a dict by name)"
                )
            feed = {n: to_numpy(a) for n, a in zip(self.input_names, arrays, strict=True)}
        return check_feed(feed, self.config.inputs, source="predict()")

    def _tokenise(self, texts: list[str]) -> Feed:
        if self.tokenizer is None:
            raise ConfigError("this model has no tokenizer in its cpuwise.json: pass token arrays, not text")
        return pad_encodings(self.tokenizer.encode_batch(texts), self.input_names)

    def predict(self, inputs: Any) -> np.ndarray:
        """Outputs for every row of `inputs`, in order."""
        return self.predict_feed(self.to_feed(inputs))

    def predict_feed(self, feed: Feed) -> np.ndarray:
        """Outputs for every row of a feed; rows seen before come from the cache (padding ignored)."""
        spec, io = self.config.sequence, self.config.io
        if self.cache is None:
            return run_all(self._run, feed, spec, io)
        n = len(next(iter(feed.values())))
        row_len = lengths(feed, spec) if spec is not None else None
        keys = []
        for i in range(n):
            row = take(feed, slice(i, i + 1))
            if spec is not None and row_len is not None:  # the key ignores padding
                row = {k: (v[:, : row_len[i]] if k in spec.sequence_inputs else v) for k, v in row.items()}
            keys.append(content_key(row))
        hits = [self.cache.get(k) for k in keys]
        missing = np.array([i for i, h in enumerate(hits) if h is None], dtype=np.int64)
        if len(missing):
            fresh = run_all(self._run, take(feed, missing), spec, io)
            for j, i in enumerate(missing):
                hits[i] = fresh[j]
                self.cache.put(keys[i], fresh[j])
        return np.stack([h for h in hits if h is not None])

    def microbatcher(self, max_batch: int | None = None, max_wait_ms: float = 2.0) -> MicroBatcher:
        """Batch concurrent single requests (`.submit(feed).result()`), padded per batch."""
        return MicroBatcher(
            self.predict_feed,
            max_batch=max_batch or self.config.io.batch_size,
            max_wait_ms=max_wait_ms,
            spec=self.config.sequence,
        )


def load(path: str | Path, *, cache: bool = True) -> Predictor:
    """Load an artifact folder written by `cpuwise optimize` (or its cpuwise.json)."""
    folder, cfg = read(path)
    return Predictor(folder, cfg, cache=cache)
