"""The decode policy, and the structural check every decoder path runs before it decodes anything.

One policy for every decoder (Pillow, simplejpeg, OpenCV, nvJPEG on the GPU):

- **Corrupt data is a sample error.** libjpeg "decodes" a JPEG whose data is cut short or damaged
  with only a warning, filling the missing rows with grey; such a file must not become training data.
  The map's `on_error` then applies (skip and count it, or raise a SampleError naming it).
  `tolerate_truncated=True` opts out: truncated files decode, grey rows and all (Pillow's
  LOAD_TRUNCATED_IMAGES).
- **A pixel limit stops decompression bombs** (a 600-byte JPEG whose header claims 20000 x 20000):
  the header's size is checked against `max_pixels` before any pixel memory is allocated. The default
  is Pillow's MAX_IMAGE_PIXELS; None turns the limit off.

`jpeg_info` is the shared check. It walks the marker structure of the whole stream (the entropy-coded
data is skipped with numpy, about 15 us for a 45 KB file): the frame header, the pixel limit, that the
stream reaches its end-of-image marker, that each scan holds every restart interval its size needs
(with a DRI), and that the scans of a progressive JPEG complete every coefficient. It catches what
can be seen without decoding; a cut inside the entropy-coded data of a baseline JPEG without restart
markers needs a decoder that reports libjpeg's warnings (simplejpeg), so the CPU decoders route JPEGs
to one under the strict policy (see decoders.py). The GPU path runs this check before nvJPEG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cpuwise.errors import ConfigError

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: 0.25 GiB as RGB uint8
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
_LOSSLESS = {0xC3, 0xC7, 0xCB, 0xCF}
_ALL = (1 << 64) - 1  # every DCT coefficient of a block


class DecodeError(ValueError):
    """Bytes that are not a decodable image (the ops turn this into a SampleError naming the file)."""


@dataclass(frozen=True)
class DecodePolicy:
    """What every decoder accepts (see the module docstring)."""

    tolerate_truncated: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not isinstance(self.tolerate_truncated, bool):
            raise ConfigError(f"tolerate_truncated: expected True or False, found "
                              f"{self.tolerate_truncated!r}. Fix: leave it False (corrupt files are sample "
                              "errors) or pass True.")
        m = self.max_pixels
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ConfigError(f"max_pixels: expected an int >= 1 or None (no limit), found {m!r}. Fix: "
                              f"leave the default ({DEFAULT_MAX_PIXELS}) or pass e.g. "
                              "max_pixels=200_000_000.")

    @property
    def strict(self) -> bool:
        return not self.tolerate_truncated

    def check_pixels(self, height: int, width: int) -> None:
        """DecodeError when an image of this size exceeds the pixel limit (before decoding it)."""
        if self.max_pixels is not None and height * width > self.max_pixels:
            raise self.too_big(f"{width} x {height} = {height * width:,} pixels")

    def too_big(self, claim: str, limit: str | None = None) -> DecodeError:
        """The error for an image whose header claims `claim` (over `limit`, default max_pixels)."""
        over = limit or f"the pixel limit of {self.max_pixels:,} (max_pixels)"
        return DecodeError(
            f"the header claims {claim}, over {over}; expected an image within the limit: this is a "
            "decompression bomb or an unusually large image (pass a larger max_pixels, or None, to decode "
            "such images)"
        )


STRICT = DecodePolicy()


@dataclass(frozen=True)
class JpegInfo:
    height: int
    width: int
    sos: int  # offset of the first start-of-scan marker: entropy-coded data follows it
    complete: bool = True  # False: the data ends before the end-of-image marker (tolerated)


@dataclass
class _Frame:
    height: int
    width: int
    progressive: bool
    comps: dict[int, tuple[int, int]]  # component id -> (h, v) sampling factors
    done: dict[int, int]  # component id -> bit k set once coefficient k's final scan (Al = 0) was seen

    def mcus(self, ids: list[int]) -> int:
        """MCUs of a scan over components `ids` (an interleaved scan, or one component's blocks)."""
        hmax = max(h for h, _ in self.comps.values())
        vmax = max(v for _, v in self.comps.values())
        if len(ids) > 1:
            return math.ceil(self.width / (8 * hmax)) * math.ceil(self.height / (8 * vmax))
        h, v = self.comps[ids[0]]
        return (math.ceil(math.ceil(self.width * h / hmax) / 8)
                * math.ceil(math.ceil(self.height * v / vmax) / 8))


def jpeg_info(buf: bytes, policy: DecodePolicy = STRICT) -> JpegInfo | None:
    """Size of a JPEG from its structure (no decoding); None if `buf` is not a JPEG.

    Raises DecodeError for a broken header, a size over the pixel limit, and (unless the policy
    tolerates truncation) a stream that ends before its end-of-image marker, a scan short of restart
    intervals, or progressive scans that stop before every coefficient is complete.
    """
    if buf[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(buf)
    frame: _Frame | None = None
    sos, interval = -1, 0
    marks: _Marks | None = None
    while i + 2 <= n:
        if buf[i] != 0xFF:
            raise DecodeError(f"broken JPEG structure: expected a marker at byte {i}, found 0x{buf[i]:02x}")
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:
            if frame is None or sos < 0:
                raise DecodeError("broken JPEG structure: the end-of-image marker comes before any image "
                                  "data")
            if policy.strict:
                _check_complete(frame)
            return JpegInfo(frame.height, frame.width, sos)
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if i + 4 > n:
            break
        length = buf[i + 2] << 8 | buf[i + 3]
        if length < 2:
            raise DecodeError(f"broken JPEG structure: a segment length of {length} at byte {i}")
        body = buf[i + 4 : i + 2 + length]
        if len(body) < length - 2:
            break  # the data ends inside this segment
        if marker in _SOF:
            frame = _frame(marker, body, policy)
        elif marker == 0xDD and len(body) >= 2:
            interval = body[0] << 8 | body[1]
        elif marker == 0xDA:
            if frame is None or frame.height == 0 or frame.width == 0:
                raise DecodeError("broken JPEG header: no frame size before the image data")
            sos = i if sos < 0 else sos
            ids = _scan(frame, body)
            start = i + 2 + length
            if not frame.progressive and len(ids) == len(frame.comps) and not interval:
                # one scan holds the whole image (most JPEGs): nothing to count, only its end to find
                # (0xFFD9 cannot occur inside entropy-coded data)
                if buf.rfind(b"\xff\xd9", start) >= 0:
                    return JpegInfo(frame.height, frame.width, sos)
                i = n
                break
            marks = marks or _Marks(buf, start)
            stop, found = marks.scan(start)
            if policy.strict and interval and stop < n:
                want = math.ceil(frame.mcus(ids) / interval) - 1
                if found < want:
                    raise DecodeError(f"corrupt JPEG data: a scan holds {found + 1} of the {want + 1} "
                                      "restart intervals its size needs (the data was cut short or damaged)")
            i = stop
            continue
        i += 2 + length
    if frame is None or sos < 0:
        raise DecodeError(f"truncated JPEG: the header ends at byte {n} before the image data")
    if policy.strict:
        raise DecodeError(f"truncated JPEG: the data ends at byte {n} without an end-of-image marker (pass "
                          "tolerate_truncated=True to decode such files, missing rows grey)")
    return JpegInfo(frame.height, frame.width, sos, complete=False)


class _Marks:
    """Where the entropy-coded data ends and its restart markers are, found once for the whole stream
    with numpy (a 0xFF byte followed by 0x00 is data, by 0xD0-0xD7 a restart marker, by 0xFF a fill
    byte; anything else starts a marker)."""

    def __init__(self, buf: bytes, start: int) -> None:
        arr = np.frombuffer(buf, np.uint8)
        ff = np.flatnonzero(arr[start:-1] == 0xFF) + start
        nxt = arr[ff + 1]
        rst = (nxt >= 0xD0) & (nxt <= 0xD7)
        self.ends = ff[(nxt != 0) & (nxt != 0xFF) & ~rst]
        self.rsts = ff[rst]
        self.n = len(buf)

    def scan(self, start: int) -> tuple[int, int]:
        """(where the entropy-coded data from `start` ends, restart markers within it)."""
        k = int(np.searchsorted(self.ends, start))
        stop = int(self.ends[k]) if k < len(self.ends) else self.n
        found = int(np.searchsorted(self.rsts, stop) - np.searchsorted(self.rsts, start))
        return stop, found


def _frame(marker: int, body: bytes, policy: DecodePolicy) -> _Frame:
    if len(body) < 6 or len(body) < 6 + 3 * body[5]:
        raise DecodeError("broken JPEG header: a frame header too short for its components")
    height, width = body[1] << 8 | body[2], body[3] << 8 | body[4]
    if height and width:
        policy.check_pixels(height, width)
    comps = {}
    for k in range(body[5]):
        cid, hv = body[6 + 3 * k], body[7 + 3 * k]
        comps[cid] = (max(1, hv >> 4), max(1, hv & 15))
    if not comps:
        raise DecodeError("broken JPEG header: a frame without components")
    # lossless JPEGs code no DCT coefficients: their scans are not checked for coverage
    return _Frame(height, width, marker in _PROGRESSIVE, comps,
                  {c: (_ALL if marker in _LOSSLESS else 0) for c in comps})


def _scan(frame: _Frame, body: bytes) -> list[int]:
    """The component ids of a scan header; records which coefficients it completes."""
    ns = body[0] if body else 0
    if ns < 1 or len(body) < 1 + 2 * ns + 3:
        raise DecodeError("broken JPEG header: a scan header too short for its components")
    ids = [body[1 + 2 * k] for k in range(ns)]
    unknown = [c for c in ids if c not in frame.comps]
    if unknown:
        raise DecodeError(f"broken JPEG header: a scan names components {unknown} the frame does not have")
    ss, se, al = body[1 + 2 * ns], body[2 + 2 * ns], body[3 + 2 * ns] & 15
    if not frame.progressive:
        ss, se, al = 0, 63, 0
    if al == 0 and ss <= se:
        band = ((1 << (min(se, 63) + 1)) - 1) ^ ((1 << ss) - 1)
        for c in ids:
            frame.done[c] |= band
    return ids


def _check_complete(frame: _Frame) -> None:
    for c, done in frame.done.items():
        if done != _ALL:
            missing = [k for k in range(64) if not done >> k & 1]
            raise DecodeError(f"corrupt JPEG data: the scans stop before coefficients "
                              f"{missing[0]}..{missing[-1]} of component {c} are complete (a progressive "
                              "file cut short)")

