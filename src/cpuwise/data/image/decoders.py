"""JPEG decoders, and the short calibration that picks the fastest one that decodes correctly here.

Three backends can decode a JPEG at 1, 1/2, 1/4 or 1/8 of its size through DCT scaling: OpenCV
(`cv2.imdecode` with IMREAD_REDUCED_COLOR_n), simplejpeg (`min_height`/`min_width`) and Pillow
(`Image.draft`). Which is fastest depends on the build and the CPU, so on first use `calibrate()`
decodes one generated photo-like JPEG with each backend at each factor, rejects a backend whose output
has the wrong size or differs from a reference (PSNR below `MIN_PSNR_DB`), and keeps the fastest per
factor. The result is cached in memory and on disk (keyed by the library versions and the CPU model),
so worker processes don't repeat it. Set CPUWISE_JPEG_DECODER=cv2|simplejpeg|pillow to force one.

Every decode follows one policy (checks.py): the structural check and the pixel limit first, then a
decoder. libjpeg only warns about corrupt data (and fills grey); OpenCV and Pillow drop the warning,
simplejpeg raises it. So under the strict policy (the default) JPEGs go to the fastest backend that
REPORTS corrupt data; OpenCV and Pillow decode JPEGs when the policy tolerates truncation (or when no
reporting backend is installed: then a log line says what goes undetected).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise import host
from cpuwise._optional import available, require
from cpuwise.data.image.checks import STRICT, DecodeError, DecodePolicy, JpegInfo, jpeg_info
from cpuwise.data.image.geometry import REDUCTIONS
from cpuwise.errors import ConfigError

MIN_PSNR_DB = 30.0  # full-size decoders agree to > 45 dB; a reduced decode vs a box filter to > 33 dB
BACKENDS = ("cv2", "simplejpeg", "pillow")
REPORTING = ("simplejpeg",)  # backends that raise libjpeg's corrupt-data warnings (strict=True)
_EOI = b"\xff\xd9"
log = logging.getLogger("cpuwise.data")


def _cv2(buf: bytes, info: JpegInfo, factor: int, strict: bool) -> tuple[np.ndarray, bool]:
    cv2 = require("cv2", purpose="decoding JPEGs with OpenCV")
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise DecodeError("OpenCV could not decode the data")
    return img, True


def _simplejpeg(buf: bytes, info: JpegInfo, factor: int, strict: bool) -> tuple[np.ndarray, bool]:
    sj = require("simplejpeg", purpose="decoding JPEGs with simplejpeg")
    try:
        img = sj.decode_jpeg(buf, colorspace="RGB", min_height=math.ceil(info.height / factor),
                             min_width=math.ceil(info.width / factor), strict=strict)
    except ValueError as exc:
        raise DecodeError(f"simplejpeg: {exc}") from exc
    return img, False


def _pillow(buf: bytes, info: JpegInfo, factor: int, strict: bool) -> tuple[np.ndarray, bool]:
    from PIL import Image  # lazy: Pillow loads on the first decode, not with cpuwise.data.image

    try:
        with Image.open(io.BytesIO(buf)) as im:  # jpeg_info checked the size against the policy's limit
            if factor > 1:
                im.draft("RGB", (max(1, info.width // factor), max(1, info.height // factor)))
            return np.asarray(im.convert("RGB")), False
    except _pillow_errors() as exc:
        raise DecodeError(f"Pillow: {exc}") from exc


def _pillow_errors() -> tuple[type[BaseException], ...]:
    """What Pillow raises for a bad image (its own bomb check too, for a raised max_pixels)."""
    from PIL import Image  # lazy: Pillow loads on the first decode, not with cpuwise.data.image

    return (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)


def _open_checked(buf: bytes, policy: DecodePolicy) -> Any:
    """Pillow's image for `buf` (header read, no pixels), its size within the policy's pixel limit.

    Pillow's own bomb check (PIL.Image.MAX_IMAGE_PIXELS: a warning over it, an error over twice it)
    runs inside Image.open, before ours can: its refusal is reported in the policy's words.
    """
    from PIL import Image  # lazy: Pillow loads on the first decode, not with cpuwise.data.image

    try:
        im = Image.open(io.BytesIO(buf))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        claim = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        pixels = int(found.group(1)) if found else 0
        if policy.max_pixels is not None and pixels > policy.max_pixels:
            raise policy.too_big(claim) from None
        raise policy.too_big(claim, "Pillow's own limit (PIL.Image.MAX_IMAGE_PIXELS; raise it too)") from None
    try:
        policy.check_pixels(im.size[1], im.size[0])
    except DecodeError:
        im.close()
        raise
    return im


_FUNCS: dict[str, Callable[[bytes, JpegInfo, int, bool], tuple[np.ndarray, bool]]] = {
    "cv2": _cv2, "simplejpeg": _simplejpeg, "pillow": _pillow}
_MODULES = {"cv2": "cv2", "simplejpeg": "simplejpeg", "pillow": "PIL"}
# jpeg_info, DecodeError, JpegInfo, DecodePolicy and STRICT live in checks.py and are re-exported here
__all__ = ["BACKENDS", "REPORTING", "STRICT", "DecodeError", "DecodePolicy", "JpegInfo", "calibrate",
           "chosen", "decode_any", "decode_jpeg", "image_size", "installed", "jpeg_info"]


def installed() -> list[str]:
    return [name for name in BACKENDS if available(_MODULES[name])]


def decode_any(buf: bytes, policy: DecodePolicy = STRICT) -> np.ndarray:
    """Full-size RGB uint8 decode of any format Pillow reads (PNG, WebP, BMP...), its size checked
    against the pixel limit from the header before any pixel is decoded."""
    try:
        with _open_checked(buf, policy) as im:
            return np.asarray(im.convert("RGB"))
    except DecodeError:
        raise
    except _pillow_errors() as exc:
        raise DecodeError(f"not a readable image ({exc})") from exc


def image_size(buf: bytes, policy: DecodePolicy = STRICT) -> tuple[int, int]:
    """(height, width) of any image Pillow reads, from its header only (checked against the limit)."""
    try:
        with _open_checked(buf, policy) as im:
            return im.size[1], im.size[0]
    except DecodeError:
        raise
    except _pillow_errors() as exc:
        raise DecodeError(f"not a readable image ({exc})") from exc


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _box_reduce(img: np.ndarray, f: int) -> np.ndarray:
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    return img[:h, :w].reshape(h // f, f, w // f, f, 3).astype(np.float64).mean(axis=(1, 3))


def _probe_jpeg() -> tuple[bytes, np.ndarray]:
    """A deterministic photo-like 500x376 JPEG (gradient, shapes, grain) and its Pillow decode."""
    from PIL import Image  # lazy: Pillow loads on the first decode, not with cpuwise.data.image

    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:376, 0:500].astype(np.float32)
    img = np.stack([xx / 2, yy / 1.5, 255 - xx / 2], axis=-1)
    img[100:250, 150:380] = (200, 60, 40)
    img += rng.normal(0, 6, img.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    data = out.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _measure(name: str, data: bytes, ref: np.ndarray, factor: int, reps: int) -> float | None:
    """Decodes per second, or None when the backend is wrong or fails at this factor."""
    info = jpeg_info(data)
    assert info is not None
    fn = _FUNCS[name]
    try:
        img, bgr = fn(data, info, factor, True)
    except Exception:
        return None
    want = (math.ceil(info.height / factor), math.ceil(info.width / factor), 3)
    if img.shape != want:
        return None
    img = img[..., ::-1] if bgr else img
    expect = ref if factor == 1 else _box_reduce(ref, factor)
    if _psnr(img[: expect.shape[0], : expect.shape[1]], expect) < MIN_PSNR_DB:
        return None
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(data, info, factor, True)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 1.0 / best


def _cache_path() -> Path:
    key = json.dumps([installed(), _versions(), host.host_facts().cpu_model], sort_keys=True)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cpuwise" / f"jpeg-decoders-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"


def _versions() -> dict[str, str]:
    out = {}
    for name in installed():
        mod = require(_MODULES[name])
        out[name] = str(getattr(mod, "__version__", "?"))
    return out


def calibrate(reps: int = 6, use_cache: bool = True) -> dict[str, Any]:
    """Measure each installed backend at each factor; returns {"choice": {factor: name},
    "strict_choice": {factor: name among the reporting backends}, "rates": ...}."""
    path = _cache_path() if use_cache else None
    if path is not None and path.exists():
        try:
            cached = json.loads(path.read_text())
            if _valid(cached):
                return dict(cached)
        except (OSError, ValueError):
            pass  # unreadable: measure again
    data, ref = _probe_jpeg()
    rates: dict[str, dict[str, float | None]] = {}
    choice: dict[str, str] = {}
    strict_choice: dict[str, str] = {}
    for f in REDUCTIONS:
        row = {name: _measure(name, data, ref, f, reps) for name in installed()}
        rates[str(f)] = row
        ok = {k: v for k, v in row.items() if v is not None}
        choice[str(f)] = _pick(ok)
        reporting = {k: v for k, v in ok.items() if k in REPORTING}
        strict_choice[str(f)] = _pick(reporting) if reporting else choice[str(f)]
    result = {"choice": choice, "strict_choice": strict_choice, "rates": rates, "versions": _versions()}
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(result))
            tmp.replace(path)
        except OSError:
            pass
    return result


def _valid(cached: Any) -> bool:
    """A calibration file of this version, naming installed backends for every factor."""
    if not isinstance(cached, dict):
        return False
    want = {str(f) for f in REDUCTIONS}
    for key in ("choice", "strict_choice"):
        table = cached.get(key)
        if not (isinstance(table, dict) and set(table) == want):
            return False
        if not all(v in installed() for v in table.values()):
            return False
    return True


def _pick(ok: dict[str, float]) -> str:
    """Fastest backend; OpenCV wins ties within 10 % because it releases the GIL (threads scale)."""
    if not ok:
        return "pillow"
    best = max(ok, key=lambda k: ok[k])
    if "cv2" in ok and ok["cv2"] >= 0.9 * ok[best]:
        return "cv2"
    return best


_choice: dict[bool, dict[int, str]] = {}  # strict -> {factor: backend}
_told: set[str] = set()


def chosen(strict: bool = False) -> dict[int, str]:
    """The backend used at each reduction factor (calibrated once per process, cached on disk).

    `strict` (the default decode policy): the fastest backend that reports corrupt data, when one is
    installed; CPUWISE_JPEG_DECODER forces a backend, except a non-reporting one under `strict`.
    """
    if strict in _choice:
        return _choice[strict]
    forced = os.environ.get("CPUWISE_JPEG_DECODER", "").strip().lower()
    reporting = [b for b in REPORTING if b in installed()]
    if forced:
        if forced not in _FUNCS:
            raise ConfigError(f"CPUWISE_JPEG_DECODER must be one of {BACKENDS}, got {forced!r}")
        pick = forced
        if strict and forced not in REPORTING and reporting:
            _tell(f"forced-{forced}", f"CPUWISE_JPEG_DECODER={forced} does not report corrupt JPEG data; "
                  f"JPEGs decode with {reporting[0]} unless the decoder tolerates truncation "
                  "(tolerate_truncated=True)")
            pick = reporting[0]
        table = {f: pick for f in REDUCTIONS}
    else:
        key = "strict_choice" if strict else "choice"
        table = {int(f): name for f, name in calibrate()[key].items()}
    if strict and not reporting:
        _tell("no-reporting", "no installed JPEG decoder reports corrupt data (simplejpeg is not "
              "installed): a JPEG cut inside its data decodes with grey rows instead of failing. Fix: "
              "pip install 'cpuwise[image]'")
    _choice[strict] = table
    return table


def _tell(key: str, msg: str) -> None:
    """Log `msg` once per process."""
    if key not in _told:
        _told.add(key)
        log.warning("cpuwise.data: %s", msg)


def decode_jpeg(buf: bytes, info: JpegInfo, factor: int = 1, backend: str | None = None,
                policy: DecodePolicy = STRICT) -> tuple[np.ndarray, bool]:
    """Decode at 1/`factor` scale: (image, is_bgr). `info` comes from jpeg_info(buf, policy), the
    structural check; the backend is `backend` or the policy's choice (see the module docstring)."""
    name = backend or chosen(policy.strict)[factor]
    if not info.complete:  # tolerated truncation: every backend then fills the rest grey, as libjpeg does
        buf = buf + _EOI
    return _FUNCS[name](buf, info, factor, policy.strict)
