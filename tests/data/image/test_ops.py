"""The CPU image ops: shapes, determinism, reduced-scale quality, errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cpuwise.data.image as ci
from conftest import jpeg_bytes, make_image, psnr
from cpuwise.data.image import geometry, ops
from cpuwise.data.transform import needs_rng, sample_rng
from cpuwise.errors import ConfigError, SampleError


def test_decode_crop_shape_dtype_and_label_kept(jpeg_dir: Path) -> None:
    path = str(sorted(jpeg_dir.rglob("*.jpg"))[0])
    fn = ci.decode_crop(64)
    assert needs_rng(fn)
    img, label = fn((path, 7), sample_rng(0, 0, 0))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and img.flags.c_contiguous and label == 7
    d = ci.decode_crop((32, 48))({"image": Path(path).read_bytes(), "y": 1}, sample_rng(0, 0, 0))
    assert d["image"].shape == (32, 48, 3) and d["y"] == 1


def test_same_seed_same_crop_and_different_index_different_crop(jpeg_dir: Path) -> None:
    path = str(sorted(jpeg_dir.rglob("*.jpg"))[3])
    fn = ci.decode_crop(48, flip=0.5)
    a = fn(path, sample_rng(5, 1, 2))
    assert np.array_equal(a, fn(path, sample_rng(5, 1, 2)))
    assert not all(np.array_equal(a, fn(path, sample_rng(5, 1, i))) for i in range(3, 8))


def test_crop_content_matches_a_full_decode_reference() -> None:
    img = make_image(300, 400, seed=1)
    data = jpeg_bytes(img, quality=95)
    box = geometry.Box(40, 60, 200, 250)
    out = ops.decode_box(data, lambda h, w: box, 100, 125)
    ref = np.asarray(Image.fromarray(img[40:240, 60:310]).resize((125, 100), Image.Resampling.BILINEAR))
    assert psnr(out, ref) > 28
    flipped = ops.decode_box(data, lambda h, w: box, 100, 125, flip=True)
    assert np.array_equal(flipped, out[:, ::-1])


def test_reduced_scale_decode_is_close_to_full_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    data = jpeg_bytes(make_image(1200, 1600, seed=2), quality=92)
    box = geometry.Box(100, 150, 1000, 1200)
    assert geometry.reduction_factor(box, 224, 224) == 4
    reduced = ops.decode_box(data, lambda h, w: box, 224, 224)
    monkeypatch.setattr(geometry, "reduction_factor", lambda *a, **k: 1)
    full = ops.decode_box(data, lambda h, w: box, 224, 224)
    assert psnr(reduced, full) > 30


def test_center_crop_resize_flip_decode() -> None:
    img = make_image(90, 120)
    out = ci.center_crop(60)((img, 0))[0]
    assert out.shape == (60, 60, 3) and np.array_equal(out, img[15:75, 30:90])
    padded = ci.center_crop(100)(img)
    assert padded.shape == (100, 100, 3) and padded[:5].max() == 0
    assert ci.resize(45)(img).shape == (45, 60, 3)
    assert ci.resize((30, 20))(img).shape == (30, 20, 3)
    flips = [ci.random_flip()(img, sample_rng(0, 0, i)) for i in range(40)]
    n_flipped = sum(np.array_equal(f, img[:, ::-1]) for f in flips)
    assert 8 < n_flipped < 32
    assert all(np.array_equal(f, img) or np.array_equal(f, img[:, ::-1]) for f in flips)
    data = jpeg_bytes(img, 95)
    assert psnr(ci.decode()(data), img) > 35
    assert ci.decode_center_crop(56)(data).shape == (56, 56, 3)
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    assert np.array_equal(ci.decode()(buf.getvalue()), img)
    assert ci.decode_crop(32)(buf.getvalue(), sample_rng(0, 0, 0)).shape == (32, 32, 3)


def test_random_flip_is_not_tied_to_the_crop_draw() -> None:
    # both maps may be handed the same stream: flips must not follow the crop's first draw
    crop_u = [sample_rng(0, 0, i).random() for i in range(400)]
    flips = [ci.random_flip()(np.zeros((2, 2, 3), np.uint8) + np.arange(2)[None, :, None].astype(np.uint8),
                              sample_rng(0, 0, i))[0, 0, 0] == 1 for i in range(400)]
    big = [u >= 0.5 for u in crop_u]
    agree = sum(a == b for a, b in zip(big, flips, strict=True)) / 400
    assert 0.4 < agree < 0.6


def test_corrupt_and_truncated_files_name_the_file(tmp_path: Path) -> None:
    good = jpeg_bytes(make_image(100, 100))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(good[: len(good) // 2])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image at all" * 10)
    for path in (bad, junk):
        crop = ci.decode_crop(32)
        for fn in (lambda s, c=crop: c(s, sample_rng(0, 0, 0)), ci.decode(), ci.decode_center_crop(32)):
            with pytest.raises(SampleError, match=path.name) as info:
                fn((str(path), 0))
            assert info.value.sample == str(path) and "on_error='skip'" in str(info.value)
    with pytest.raises(SampleError, match="missing.jpg"):
        ci.read_bytes()((str(tmp_path / "missing.jpg"), 0))
    with pytest.raises(ConfigError, match="expected a path"):
        ci.decode()((12345, 0))
    with pytest.raises(ConfigError, match="decode first"):
        ci.random_flip(1.0)(("not decoded", 0), sample_rng(0, 0, 0))
