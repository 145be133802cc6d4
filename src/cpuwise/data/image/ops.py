"""Image ops for cpuwise.data map stages: uint8 HWC RGB in and out, normalisation left to the device.

Each op is a plain callable on a sample `(path_or_bytes_or_image, label)` (or a dict with "image", or
a bare image) and changes only the image part (`transform.on_image`). Random ops are
`RandomTransform`s: the engine calls them with the sample's own rng, so crops are the same for a seed
whatever the worker count, and the same as the GPU path's (`geometry` holds the shared math).

    ds.map(decode_crop(224)).map(random_flip())            # training
    ds.map(decode_center_crop(224))                          # evaluation (Resize(256) + CenterCrop(224))

`decode_crop` decodes at a reduced DCT scale (1/2, 1/4, 1/8) when the crop still has at least the
output resolution at that scale, so big photos cost a fraction of a full decode with no visible loss.
A file that cannot be decoded raises `SampleError` naming it; the map's on_error policy applies. So
does a corrupt or truncated file (libjpeg would fill it with grey) and one over the pixel limit, for
every decoder (checks.py); `tolerate_truncated=True` on an op decodes truncated files anyway.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cpuwise._optional import available
from cpuwise.data._files import read_regular
from cpuwise.data.image import decoders, geometry
from cpuwise.data.image.checks import DEFAULT_MAX_PIXELS, STRICT, DecodePolicy
from cpuwise.data.image.geometry import Box
from cpuwise.data.transform import RandomTransform, on_image
from cpuwise.errors import ConfigError, SampleError

DECODE_FIX = ("Expected a readable JPEG/PNG image; check or delete the file, or skip bad samples with "
              ".map(..., on_error='skip').")  # the end of every decode error (CPU and GPU paths)


def _name(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return str(getattr(src, "name", f"<{len(src)} bytes>"))


def _fail(stage: str, src: Any, why: object) -> SampleError:
    name = _name(src)
    return SampleError(f"{stage}: cannot decode '{name}': {why}. {DECODE_FIX}", sample=name, stage=stage)


def load_bytes(src: Any, stage: str = "read_bytes") -> bytes:
    """The encoded bytes of a path, bytes-like object or 1-D uint8 array."""
    if isinstance(src, (str, os.PathLike)):
        try:
            return read_regular(src)  # never blocks on a FIFO nor reads a device
        except OSError as exc:
            raise SampleError(f"{stage}: cannot read '{os.fspath(src)}': {exc.strerror or exc}. "
                              "Check the path and its permissions, or use on_error='skip'.",
                              sample=os.fspath(src), stage=stage) from exc
    if isinstance(src, bytes):
        return src
    if isinstance(src, (bytearray, memoryview)) or (isinstance(src, np.ndarray) and src.ndim == 1):
        return bytes(src)
    raise ConfigError(f"{stage}: expected a path, bytes or a 1-D uint8 array of encoded image data, "
                      f"got {type(src).__name__}; put the path or the file's bytes first in the sample")


def _crop_resize(img: np.ndarray, box: Box, out_h: int, out_w: int) -> np.ndarray:
    roi = img[box.top:box.top + box.height, box.left:box.left + box.width]
    if roi.shape[0] == out_h and roi.shape[1] == out_w:
        return np.ascontiguousarray(roi)
    if available("cv2"):
        import cv2  # lazy: OpenCV (the image extra) loads on first use; available() checked it

        shrink = min(roi.shape[0] / out_h, roi.shape[1] / out_w)
        interp = cv2.INTER_AREA if shrink > 2 else cv2.INTER_LINEAR
        return np.asarray(cv2.resize(roi, (out_w, out_h), interpolation=interp))
    from PIL import Image  # lazy: Pillow loads on the first decode, not with cpuwise.data.image

    return np.asarray(Image.fromarray(np.ascontiguousarray(roi)).resize((out_w, out_h),
                                                                       Image.Resampling.BILINEAR))


def decode_box(src: Any, pick_box: Any, out_h: int, out_w: int, flip: bool | Any = False,
               stage: str = "decode_crop", backend: str | None = None,
               policy: DecodePolicy = STRICT, name: str | None = None) -> np.ndarray:
    """Decode `src` and return the box chosen by `pick_box(height, width)` resized to out_h x out_w.

    `flip` may be a bool or a callable drawn after the box (so the rng order matches the GPU path).
    `policy`: corrupt data and the pixel limit (cpuwise.data.image.checks), checked before decoding.
    `name`: the sample's name in errors when `src` is its bytes (default: the path, or "<N bytes>").
    """
    if isinstance(src, np.ndarray) and src.ndim == 3:
        box = pick_box(src.shape[0], src.shape[1])
        return _finish(_crop_resize(src, box, out_h, out_w), False, flip() if callable(flip) else flip)
    buf = load_bytes(src, stage)
    try:
        info = decoders.jpeg_info(buf, policy)
        if info is None:
            img, bgr = decoders.decode_any(buf, policy), False
            box = pick_box(img.shape[0], img.shape[1])
        else:
            box = pick_box(info.height, info.width)
            factor = geometry.reduction_factor(box, out_h, out_w)
            img, bgr = decoders.decode_jpeg(buf, info, factor, backend, policy)
            if factor > 1 or img.shape[:2] != (info.height, info.width):
                box = geometry.scale_box(box, img.shape[0] / info.height, img.shape[1] / info.width,
                                         img.shape[0], img.shape[1])
    except decoders.DecodeError as exc:
        raise _fail(stage, src if name is None else name, exc) from exc
    out = _crop_resize(img, box, out_h, out_w)
    return _finish(out, bgr, flip() if callable(flip) else flip)


def _finish(out: np.ndarray, bgr: bool, flip: bool) -> np.ndarray:
    """To RGB and mirrored if asked; OpenCV's copies are ~40x faster than numpy's negative strides."""
    if available("cv2"):
        import cv2  # lazy: OpenCV (the image extra) loads on first use; available() checked it

        if flip:
            out = cv2.flip(out, 1)
        return np.asarray(cv2.cvtColor(out, cv2.COLOR_BGR2RGB)) if bgr else out
    if bgr:
        out = out[:, ::-1, ::-1] if flip else out[..., ::-1]
    elif flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


class decode_crop(RandomTransform):  # noqa: N801 - a transform used like a function
    """Decode + RandomResizedCrop(size, scale, ratio) to uint8 HWC RGB, at reduced DCT scale if lossless.

    `flip` > 0 also mirrors with that probability (drawn after the box, as the GPU path does).
    A corrupt or truncated file, or one over `max_pixels`, is a SampleError (the map's on_error
    applies) unless `tolerate_truncated=True` (see cpuwise.data.image.checks).
    Example: `ds.map(cd.image.decode_crop(224), on_error="skip")`.
    """

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: float = 0.0, *,
                 tolerate_truncated: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.policy = DecodePolicy(tolerate_truncated, max_pixels)
        self.out_h, self.out_w = geometry.output_size(size)
        self.scale = geometry.check_range("scale", scale)
        self.ratio = geometry.check_range("ratio", ratio)
        if not 0 <= flip <= 1:
            raise ConfigError(f"flip must be a probability in [0, 1], got {flip}")
        self.flip = float(flip)

    def __repr__(self) -> str:
        return f"decode_crop(({self.out_h}, {self.out_w}), scale={self.scale}, ratio={self.ratio})"

    def box(self, rng: np.random.Generator, height: int, width: int) -> Box:
        return geometry.random_resized_crop_box(rng, height, width, self.scale, self.ratio)

    def __call__(self, sample: Any, rng: np.random.Generator) -> Any:
        def apply(src: Any) -> np.ndarray:
            return decode_box(src, lambda h, w: self.box(rng, h, w), self.out_h, self.out_w,
                              lambda: geometry.draw_flip(rng, self.flip), policy=self.policy)

        return on_image(sample, apply)


class decode_center_crop:  # noqa: N801
    """Decode + the evaluation crop (Resize(size / fraction) + CenterCrop(size)) at reduced scale."""

    def __init__(self, size: int | tuple[int, int], fraction: float = 0.875, *,
                 tolerate_truncated: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.policy = DecodePolicy(tolerate_truncated, max_pixels)
        self.out_h, self.out_w = geometry.output_size(size)
        self.fraction = float(fraction)
        geometry.center_crop_box(100, 100, 1, 1, self.fraction)  # validates fraction

    def __call__(self, sample: Any) -> Any:
        def pick(h: int, w: int) -> Box:
            return geometry.center_crop_box(h, w, self.out_h, self.out_w, self.fraction)

        return on_image(sample, lambda src: decode_box(src, pick, self.out_h, self.out_w,
                                                       stage="decode_center_crop", policy=self.policy))


class decode:  # noqa: N801
    """Full-size decode to uint8 HWC RGB (any format Pillow reads; JPEGs through the fastest backend).

    Corrupt or truncated files and files over `max_pixels` are SampleErrors unless
    `tolerate_truncated=True` (see cpuwise.data.image.checks).
    """

    def __init__(self, *, tolerate_truncated: bool = False,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.policy = DecodePolicy(tolerate_truncated, max_pixels)

    def __call__(self, sample: Any) -> Any:
        def apply(src: Any) -> np.ndarray:
            buf = load_bytes(src, "decode")
            try:
                info = decoders.jpeg_info(buf, self.policy)
                if info is None:
                    return decoders.decode_any(buf, self.policy)
                img, bgr = decoders.decode_jpeg(buf, info, 1, policy=self.policy)
            except decoders.DecodeError as exc:
                raise _fail("decode", src, exc) from exc
            return _finish(img, bgr, False)

        return on_image(sample, apply)


class read_bytes:  # noqa: N801
    """(path, label) -> (bytes, label): the only CPU work of the GPU decode path."""

    def __call__(self, sample: Any) -> Any:
        return on_image(sample, lambda src: load_bytes(src, "read_bytes"))


def _as_image(img: Any, stage: str) -> np.ndarray:
    if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.dtype == np.uint8):
        raise ConfigError(f"{stage}: expected a decoded uint8 HxWxC image, got "
                          f"{type(img).__name__} {getattr(img, 'shape', '')}; decode first "
                          "(.map(cd.image.decode()) or decode_crop)")
    return img


class resize:  # noqa: N801
    """Resize: an int sets the shorter side (aspect kept, like torchvision Resize); (h, w) is exact."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = size
        geometry.output_size(size)

    def __call__(self, sample: Any) -> Any:
        def apply(img: Any) -> np.ndarray:
            img = _as_image(img, "resize")
            h, w = img.shape[:2]
            if isinstance(self.size, int):
                s = self.size
                oh, ow = (s, max(1, int(s * w / h))) if h <= w else (max(1, int(s * h / w)), s)
            else:
                oh, ow = geometry.output_size(self.size)
            return _crop_resize(img, Box(0, 0, h, w), oh, ow)

        return on_image(sample, apply)


class center_crop:  # noqa: N801
    """Central size x size crop of a decoded image (zero-padded when smaller, like torchvision)."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.out_h, self.out_w = geometry.output_size(size)

    def __call__(self, sample: Any) -> Any:
        def apply(img: Any) -> np.ndarray:
            img = _as_image(img, "center_crop")
            h, w = img.shape[:2]
            if h < self.out_h or w < self.out_w:
                ph, pw = max(0, self.out_h - h), max(0, self.out_w - w)
                img = np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
                h, w = img.shape[:2]
            top, left = int(round((h - self.out_h) / 2.0)), int(round((w - self.out_w) / 2.0))
            return np.ascontiguousarray(img[top:top + self.out_h, left:left + self.out_w])

        return on_image(sample, apply)


class random_flip(RandomTransform):  # noqa: N801
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ConfigError(f"p must be a probability in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, sample: Any, rng: np.random.Generator) -> Any:
        # A map before this one (decode_crop) may have been handed the same (seed, epoch, index)
        # stream, so this first draw can equal its scale draw. Use the draw's low 33 bits, which are
        # independent of the high bits that set the crop area (a jumped stream costs 40 us).
        u = rng.random()
        flip = bool(self.p > 0 and (u * (1 << 20)) % 1.0 < self.p)
        return on_image(sample, lambda img: _finish(_as_image(img, "random_flip"), False, True)
                        if flip else img)


PARAMS = ("top", "left", "height", "width", "flip", "image_height", "image_width", "is_jpeg")


class read_for_gpu(RandomTransform):  # noqa: N801
    """CPU side of the GPU path: (path, label) -> ((bytes, params, name), label), no decoding.

    `params` is int32 [top, left, height, width, flip, image_height, image_width, is_jpeg]: the same
    box and flip `decode_crop(size, scale, ratio, flip)` draws for this sample's rng (the header gives
    the size), so the GPU and CPU paths crop identically. Truncated, corrupt (as far as the structural
    check sees), oversized or non-image files fail here, on the CPU, under the map's on_error policy.
    The batch collates to ((list[bytes], int32 N x 8, list[str]), labels), which
    `cpuwise.data.image.loader.GpuLoader` consumes.
    """

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: float = 0.5, *,
                 tolerate_truncated: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.crop = decode_crop(size, scale, ratio, flip, tolerate_truncated=tolerate_truncated,
                                max_pixels=max_pixels)
        self.policy = self.crop.policy

    def read(self, src: Any, rng: np.random.Generator, stage: str = "read_for_gpu"
             ) -> tuple[bytes, np.ndarray, str]:
        """(bytes, params, name) for one image source."""
        buf = load_bytes(src, stage)
        try:
            info = decoders.jpeg_info(buf, self.policy)  # the check the GPU path relies on
            size = (info.height, info.width) if info is not None else decoders.image_size(buf, self.policy)
        except decoders.DecodeError as exc:
            raise _fail(stage, src, exc) from exc
        box = self.crop.box(rng, size[0], size[1])
        flip = geometry.draw_flip(rng, self.crop.flip)
        params = np.array([*box, flip, size[0], size[1], info is not None], dtype=np.int32)
        return buf, params, _name(src)

    def __call__(self, sample: Any, rng: np.random.Generator) -> Any:
        return on_image(sample, lambda src: self.read(src, rng))
