"""Header parsing, backend correctness and the calibration that picks a decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import jpeg_bytes, make_image, psnr
from cpuwise.data.image import decoders


def test_jpeg_info_reads_the_frame_size_and_rejects_truncation() -> None:
    data = jpeg_bytes(make_image(123, 321))
    info = decoders.jpeg_info(data)
    assert info is not None and (info.height, info.width) == (123, 321)
    assert decoders.jpeg_info(b"\x89PNG\r\n\x1a\n....") is None
    with pytest.raises(decoders.DecodeError, match="truncated"):
        decoders.jpeg_info(data[: len(data) // 2])
    with pytest.raises(decoders.DecodeError):
        decoders.jpeg_info(data[:200])


@pytest.mark.parametrize("backend", decoders.installed())
@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_every_backend_decodes_rgb_at_every_factor(backend: str, factor: int) -> None:
    img = make_image(376, 500, seed=3)
    data = jpeg_bytes(img, quality=95)
    info = decoders.jpeg_info(data)
    assert info is not None
    out, bgr = decoders.decode_jpeg(data, info, factor, backend)
    assert out.shape == (math.ceil(376 / factor), math.ceil(500 / factor), 3) and out.dtype == np.uint8
    rgb = out[..., ::-1] if bgr else out
    ref = img[: 376 // factor * factor, : 500 // factor * factor].reshape(
        376 // factor, factor, 500 // factor, factor, 3).mean(axis=(1, 3))
    assert psnr(rgb[: ref.shape[0], : ref.shape[1]], ref) > 28


def test_calibration_picks_a_correct_backend_per_factor() -> None:
    result = decoders.calibrate(reps=1, use_cache=False)
    assert set(result["choice"]) == {"1", "2", "4", "8"}
    for f, name in result["choice"].items():
        assert name in decoders.installed()
        assert result["rates"][f][name] is not None and result["rates"][f][name] > 0


def test_a_wrong_backend_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    def grey(buf: bytes, info: decoders.JpegInfo, factor: int, strict: bool) -> tuple[np.ndarray, bool]:
        shape = (math.ceil(info.height / factor), math.ceil(info.width / factor), 3)
        return np.full(shape, 128, np.uint8), False

    monkeypatch.setitem(decoders._FUNCS, "pillow", grey)
    result = decoders.calibrate(reps=1, use_cache=False)
    assert all(result["rates"][f]["pillow"] is None for f in result["rates"])
    assert "pillow" not in result["choice"].values() or decoders.installed() == ["pillow"]


def test_calibration_is_cached_on_disk() -> None:
    first = decoders.calibrate(reps=1)
    assert decoders._cache_path().exists()
    assert decoders.calibrate(reps=1) == first


def test_forced_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoders, "_choice", {})
    monkeypatch.setenv("CPUWISE_JPEG_DECODER", "pillow")
    assert set(decoders.chosen().values()) == {"pillow"}
    monkeypatch.setattr(decoders, "_choice", {})
    monkeypatch.setenv("CPUWISE_JPEG_DECODER", "nope")
    with pytest.raises(ValueError, match="CPUWISE_JPEG_DECODER"):
        decoders.chosen()
    monkeypatch.setattr(decoders, "_choice", {})
