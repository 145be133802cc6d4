"""JPEG decoders, and the short calibration that picks the fastest one that decodes correctly here.

Three backends can decode a JPEG at 1, 1/2, 1/4 or 1/8 of its size through DCT scaling: OpenCV
(`cv2.imdecode` with IMREAD_REDUCED_COLOR_n), simplejpeg (`min_height`/`min_width`) and Pillow
(`Image.draft`). Which is fastest depends on the build and the CPU, so on first use `calibrate()`
decodes one generated photo-like JPEG with each backend at each factor, rejects a backend whose output
has the wrong size or differs from a reference (PSNR below `MIN_PSNR_DB`), and keeps the fastest per
factor. The result is cached in memory and on disk (keyed by the library versions and the CPU model),
so worker processes don't repeat it. Set CPUWISE_JPEG_DECODER=cv2|simplejpeg|pillow to force one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise import host
from cpuwise._optional import available, require
from cpuwise.data.image.geometry import REDUCTIONS
from cpuwise.errors import ConfigError

MIN_PSNR_DB = 30.0  # full-size decoders agree to > 45 dB; a reduced decode vs a box filter to > 33 dB
BACKENDS = ("cv2", "simplejpeg", "pillow")
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class DecodeError(ValueError):
    """Bytes that are not a decodable image (the ops turn this into a SampleError naming the file)."""


@dataclass(frozen=True)
class JpegInfo:
    height: int
    width: int
    sos: int  # offset of the first start-of-scan marker: entropy-coded data follows it


def jpeg_info(buf: bytes) -> JpegInfo | None:
    """Size of a JPEG from its frame header (no decoding); None if `buf` is not a JPEG.

    Raises DecodeError for a JPEG whose header is broken or whose data ends before the EOI marker
    (a truncated file: libjpeg would silently fill the missing rows with grey).
    """
    if buf[:2] != b"\xff\xd8":
        return None
    i, n, size = 2, len(buf), None
    while i + 4 <= n:
        if buf[i] != 0xFF:
            raise DecodeError(f"broken JPEG header: expected a marker at byte {i}, found 0x{buf[i]:02x}")
        marker = buf[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if marker == 0xDA:
            if size is None or size[0] == 0 or size[1] == 0:
                raise DecodeError("broken JPEG header: no frame size before the image data")
            if buf.rfind(b"\xff\xd9", i) < 0:
                raise DecodeError(f"truncated JPEG: {n} bytes and no end-of-image marker")
            return JpegInfo(size[0], size[1], i)
        if marker == 0xD9:
            break
        if marker in _SOF and i + 9 <= n:
            size = (buf[i + 5] << 8 | buf[i + 6], buf[i + 7] << 8 | buf[i + 8])
        i += 2 + (buf[i + 2] << 8 | buf[i + 3])
    raise DecodeError(f"truncated JPEG: header ends at byte {n} before the image data")


def _cv2(buf: bytes, info: JpegInfo, factor: int) -> tuple[np.ndarray, bool]:
    cv2 = require("cv2", purpose="decoding JPEGs with OpenCV")
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise DecodeError("OpenCV could not decode the data")
    return img, True


def _simplejpeg(buf: bytes, info: JpegInfo, factor: int) -> tuple[np.ndarray, bool]:
    sj = require("simplejpeg", purpose="decoding JPEGs with simplejpeg")
    try:
        img = sj.decode_jpeg(buf, colorspace="RGB", min_height=math.ceil(info.height / factor),
                             min_width=math.ceil(info.width / factor), strict=True)
    except ValueError as exc:
        raise DecodeError(f"simplejpeg: {exc}") from exc
    return img, False


def _pillow(buf: bytes, info: JpegInfo, factor: int) -> tuple[np.ndarray, bool]:
    from PIL import Image  # lazy: Pillow loads on the first decode, not with cpuwise.data.image

    try:
        with Image.open(io.BytesIO(buf)) as im:
            if factor > 1:
                im.draft("RGB", (max(1, info.width // factor), max(1, info.height // factor)))
            return np.asarray(im.convert("RGB")), False
    except (OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(f"Pillow: {exc}") from exc


_FUNCS: dict[str, Callable[[bytes, JpegInfo, int], tuple[np.ndarray, bool]]] = {
    "cv2": _cv2, "simplejpeg": _simplejpeg, "pillow": _pillow}
_MODULES = {"cv2": "cv2", "simplejpeg": "simplejpeg", "pillow": "PIL"}


def installed() -> list[str]:
    return [name for name in BACKENDS if available(_MODULES[name])]


def decode_any(buf: bytes) -> np.ndarray:
    """Full-size RGB uint8 decode of any format Pillow reads (PNG, WebP, BMP...)."""
    from PIL import Image  # lazy: Pillow loads on the first decode, not with cpuwise.data.image

    try:
        with Image.open(io.BytesIO(buf)) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(f"not a readable image ({exc})") from exc


def image_size(buf: bytes) -> tuple[int, int]:
    """(height, width) of any image Pillow reads, from its header only."""
    from PIL import Image  # lazy: Pillow loads on the first decode, not with cpuwise.data.image

    try:
        with Image.open(io.BytesIO(buf)) as im:
            return im.size[1], im.size[0]
    except (OSError, ValueError, SyntaxError) as exc:
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
        img, bgr = fn(data, info, factor)
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
            fn(data, info, factor)
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
    """Measure each installed backend at each factor; returns {"choice": {factor: name}, "rates": ...}."""
    path = _cache_path() if use_cache else None
    if path is not None and path.exists():
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    data, ref = _probe_jpeg()
    rates: dict[str, dict[str, float | None]] = {}
    choice: dict[str, str] = {}
    for f in REDUCTIONS:
        row = {name: _measure(name, data, ref, f, reps) for name in installed()}
        rates[str(f)] = row
        ok = {k: v for k, v in row.items() if v is not None}
        choice[str(f)] = _pick(ok)
    result = {"choice": choice, "rates": rates, "versions": _versions()}
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(result))
            tmp.replace(path)
        except OSError:
            pass
    return result


def _pick(ok: dict[str, float]) -> str:
    """Fastest backend; OpenCV wins ties within 10 % because it releases the GIL (threads scale)."""
    if not ok:
        return "pillow"
    best = max(ok, key=lambda k: ok[k])
    if "cv2" in ok and ok["cv2"] >= 0.9 * ok[best]:
        return "cv2"
    return best


_choice: dict[int, str] | None = None


def chosen() -> dict[int, str]:
    """The backend used at each reduction factor (calibrated once per process, cached on disk)."""
    global _choice
    if _choice is None:
        forced = os.environ.get("CPUWISE_JPEG_DECODER", "").strip().lower()
        if forced:
            if forced not in _FUNCS:
                raise ConfigError(f"CPUWISE_JPEG_DECODER must be one of {BACKENDS}, got {forced!r}")
            _choice = {f: forced for f in REDUCTIONS}
        else:
            _choice = {int(f): name for f, name in calibrate()["choice"].items()}
    return _choice


def decode_jpeg(buf: bytes, info: JpegInfo, factor: int = 1, backend: str | None = None
                ) -> tuple[np.ndarray, bool]:
    """Decode at 1/`factor` scale with the chosen (or given) backend: (image, is_bgr)."""
    name = backend or chosen()[factor]
    return _FUNCS[name](buf, info, factor)
