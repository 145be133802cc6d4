"""Corrupt JPEGs never become training data (issue 14, item 3).

A file cut short with an end-of-image marker appended used to decode without an error (the rest
grey), and a 600-byte JPEG whose header claims 20000 x 20000 decoded to a grey crop after allocating
1.1 GiB. Every decoder path follows one policy: corrupt data is a sample error (on_error applies)
unless `tolerate_truncated=True`, and a pixel limit refuses decompression bombs before any pixel
memory is allocated. The GPU path runs the same structural check before nvJPEG, tested here on CPU.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import cpuwise.data as cd
import cpuwise.data.image as ci
from conftest import jpeg_bytes, make_image
from cpuwise.data.image import decoders, gpu
from cpuwise.data.stages.batch import collate
from cpuwise.data.transform import sample_rng
from cpuwise.errors import ConfigError, SampleError

EOI = b"\xff\xd9"


def save(img: np.ndarray, **kw: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(img).save(out, format="JPEG", quality=90, **kw)
    return out.getvalue()


def cut(data: bytes) -> bytes:
    """The first third of the file and an end-of-image marker: libjpeg fills the rest with grey."""
    return data[: len(data) // 3] + EOI


def jpeg_bomb(h: int = 20000, w: int = 20000) -> bytes:
    """A tiny valid JPEG whose frame header claims h x w."""
    data = bytearray(jpeg_bytes(make_image(8, 8)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def png_bomb(h: int = 20000, w: int = 20000) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


IMG = make_image(376, 500, seed=5)
GOOD = save(IMG)
CORRUPT = {
    "baseline cut": cut(GOOD),
    "progressive cut": cut(save(IMG, progressive=True)),
    "restart markers cut": cut(save(IMG, restart_marker_rows=1)),
    "no end marker": GOOD[: len(GOOD) // 2],
}


def ops_under_test(**policy: Any) -> dict[str, Callable[[Any], Any]]:
    """Every CPU op that decodes or reads a sample, as sample -> output."""
    crop, reader = ci.decode_crop(64, **policy), ci.read_for_gpu(64, **policy)
    split = ci.decode_split(64, gpu_fraction=0.0, **policy)  # the CPU share of the split path
    return {
        "decode": ci.decode(**policy),
        "decode_crop": lambda s: crop(s, sample_rng(0, 0, 0)),
        "decode_center_crop": ci.decode_center_crop(64, **policy),
        "read_for_gpu": lambda s: reader(s, sample_rng(0, 0, 0)),
        "decode_split": lambda s: split(s, sample_rng(0, 0, 0)),
    }


@pytest.fixture(params=decoders.installed())
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each installed backend forced in turn (CPUWISE_JPEG_DECODER), as a user may force one."""
    monkeypatch.setenv("CPUWISE_JPEG_DECODER", request.param)
    monkeypatch.setattr(decoders, "_choice", {})
    return str(request.param)


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_every_op_refuses_a_corrupt_jpeg_with_every_backend(tmp_path: Path, backend: str, kind: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(CORRUPT[kind])
    for name, op in ops_under_test().items():
        if name in ("read_for_gpu",) and kind == "baseline cut":
            continue  # no decoding on this path: the structure of a baseline cut looks whole (see below)
        with pytest.raises(SampleError, match=r"bad\.jpg.*(corrupt|truncated|premature)") as info:
            op((str(path), 0))
        assert info.value.sample == str(path), (name, kind)


def test_corrupt_files_are_skipped_counted_and_named(tmp_path: Path) -> None:
    paths = []
    for i, (kind, data) in enumerate([("good", GOOD), *CORRUPT.items(), ("good2", save(IMG[::-1]))]):
        paths.append(tmp_path / f"{i}-{kind.replace(' ', '_')}.jpg")
        paths[-1].write_bytes(data)
    for backend in ("thread", "process"):
        with cd.from_files(paths, labels=list(range(len(paths)))).map(
                ci.decode_crop(64), on_error="skip", workers=2, backend=backend) as ds:
            assert [int(y) for _, y in ds] == [0, len(paths) - 1]
            entry = ds.stats()["stages"][-1]
            assert entry["errors"] == len(CORRUPT)
            assert sorted(entry["skipped"]) == sorted(str(p) for p in paths[1:-1])


def test_tolerate_truncated_decodes_them_with_every_backend(backend: str) -> None:
    for kind, data in CORRUPT.items():
        out = ci.decode(tolerate_truncated=True)(data)
        assert out.shape == (376, 500, 3) and out.dtype == np.uint8, kind
        crop = ci.decode_crop(64, tolerate_truncated=True)(data, sample_rng(0, 0, 0))
        assert crop.shape == (64, 64, 3)


def test_a_good_jpeg_still_decodes_the_same() -> None:
    for kw in ({}, {"progressive": True}, {"restart_marker_rows": 1}, {"restart_marker_blocks": 3},
               {"subsampling": 0}):
        data = save(IMG, **kw)
        info = decoders.jpeg_info(data)
        assert info is not None and (info.height, info.width) == (376, 500)
        assert ci.decode()(data).shape == (376, 500, 3)
    grey = io.BytesIO()
    Image.fromarray(IMG[..., 0]).save(grey, format="JPEG", progressive=True)
    assert ci.decode()(grey.getvalue()).shape == (376, 500, 3)


@pytest.mark.parametrize("bomb", [jpeg_bomb(), png_bomb()], ids=["jpeg", "png"])
def test_a_decompression_bomb_is_refused_before_any_allocation(bomb: bytes, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a decoder ran on a decompression bomb")

    for name in list(decoders._FUNCS):
        monkeypatch.setitem(decoders._FUNCS, name, never)
    monkeypatch.setattr(decoders, "calibrate", never)  # nor may a calibration run (and be cached) here
    monkeypatch.setattr(Image.Image, "load", never)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bomb)
    tracemalloc.start()
    try:
        for name, op in ops_under_test().items():
            # (Pillow's own check runs first for other formats and reports the pixel count only)
            with pytest.raises(SampleError, match=r"(20000 x 20000 = )?400,000,000 pixels, over the pixel "
                                                  r"limit of 89,478,485 \(max_pixels\)") as info:
                op((str(path), 0))
            assert info.value.sample == str(path), name
        assert tracemalloc.get_traced_memory()[1] < 50 << 20  # nothing near the 1.2 GB it claims
    finally:
        tracemalloc.stop()
    assert gpu.refused([bomb]) == [0] or bomb[:2] != b"\xff\xd8"


def test_the_pixel_limit_is_a_setting() -> None:
    with pytest.raises(SampleError, match=r"500 x 376 = 188,000 pixels, over the pixel limit of 1,000"):
        ci.decode(max_pixels=1000)(GOOD)
    assert ci.decode(max_pixels=188_000)(GOOD).shape == (376, 500, 3)
    assert ci.decode(max_pixels=None)(GOOD).shape == (376, 500, 3)
    for bad in (0, -5, 1.5, True, "many"):
        with pytest.raises(ConfigError, match="max_pixels: expected an int >= 1 or None"):
            ci.decode(max_pixels=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tolerate_truncated: expected True or False"):
        ci.decode_crop(64, tolerate_truncated="yes")  # type: ignore[arg-type]


# --- the GPU path's check, on the CPU -------------------------------------------------------------

def silent_gpu_decoder(datas: list[bytes], device: object) -> tuple[list[object], list[int]]:
    """Stands in for nvJPEG at its worst: decodes whatever it gets, corrupt data included."""
    torch = pytest.importorskip("torch")
    out = [ci.decode(tolerate_truncated=True)(d).copy() for d in datas]
    return [torch.from_numpy(x).permute(2, 0, 1) for x in out], []


def test_the_gpu_path_refuses_what_the_structural_check_refuses() -> None:
    from cpuwise.data.image import checks  # here, not above: the tests above run at older commits too

    datas = [GOOD, CORRUPT["progressive cut"], CORRUPT["restart markers cut"], CORRUPT["no end marker"],
             jpeg_bomb(), b"not a jpeg"]
    assert gpu.refused(datas) == [1, 2, 3, 4, 5]
    assert gpu.refused(datas, checks.DecodePolicy(tolerate_truncated=True)) == [4, 5]
    assert gpu.refused(datas, checks.DecodePolicy(True, None)) == [5]


def test_decode_batch_never_hands_a_refused_file_to_the_gpu_decoder() -> None:
    seen: list[bytes] = []

    def fake_nvjpeg(datas: list[bytes], device: object) -> tuple[list[object], list[int]]:
        seen.extend(datas)
        return silent_gpu_decoder(datas, device)

    datas = [GOOD, CORRUPT["restart markers cut"], GOOD, jpeg_bomb()]
    params = np.array([[0, 0, 376, 500, 0, 376, 500, 1]] * 4, np.int32)
    out, failed = gpu.decode_batch(datas, params, (32, 32), "cpu", fake_nvjpeg)
    assert failed == [1, 3] and seen == [GOOD, GOOD]
    assert out.shape == (4, 3, 32, 32) and float(out[1].abs().sum()) == 0.0


def test_the_gpu_loader_applies_the_policy_to_its_share(tmp_path: Path) -> None:
    from cpuwise.data.image.loader import GpuLoader

    fake_nvjpeg = silent_gpu_decoder

    files = {"good.jpg": GOOD, "prog.jpg": CORRUPT["progressive cut"],
             "rst.jpg": CORRUPT["restart markers cut"], "good2.jpg": save(IMG[::-1])}
    reader = ci.read_for_gpu(40, tolerate_truncated=True)  # lets them through to the loader
    samples = []
    for i, (name, data) in enumerate(files.items()):
        (tmp_path / name).write_bytes(data)
        samples.append(reader((str(tmp_path / name), i), sample_rng(0, 0, i)))
    batches = [collate(samples)]
    for mode in ("gpu", "cpu"):
        loader = GpuLoader(batches, 40, decode=mode, device="cpu", on_error="skip", gpu_decode_fn=fake_nvjpeg)
        (x, y), = list(loader)
        assert y.tolist() == [0, 3], mode
        assert sorted(Path(p).name for p in loader.stats()["decode"]["skipped"]) == ["prog.jpg", "rst.jpg"]
        with pytest.raises(SampleError, match=r"prog\.jpg"):
            list(GpuLoader(batches, 40, decode=mode, device="cpu", gpu_decode_fn=fake_nvjpeg))
        tolerant = GpuLoader(batches, 40, decode=mode, device="cpu", gpu_decode_fn=fake_nvjpeg,
                             tolerate_truncated=True)
        (x, y), = list(tolerant)
        assert y.tolist() == [0, 1, 2, 3]
