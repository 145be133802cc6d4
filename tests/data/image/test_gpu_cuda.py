"""The GPU path on a real GPU: nvJPEG batch decode, roi_align vs the torch reference, corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cpuwise.data.image as ci
from conftest import jpeg_bytes, make_image, psnr
from cpuwise.data.image import gpu, ops
from cpuwise.data.image.loader import GpuLoader
from cpuwise.data.stages.batch import collate
from cpuwise.data.transform import sample_rng
from cpuwise.errors import SampleError

pytestmark = pytest.mark.gpu


def _samples(paths: list[str], size: int) -> tuple[list[bytes], np.ndarray, list[str]]:
    read = ops.read_for_gpu(size, flip=0.5)
    (datas, params, names), _ = collate([read((p, 0), sample_rng(0, 0, i)) for i, p in enumerate(paths)])
    return datas, params, names


def test_nvjpeg_batch_matches_the_cpu_path(jpeg_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))
    datas, params, _ = _samples(paths, 64)
    out, failed = gpu.decode_batch(datas, params, (64, 64), "cuda")
    assert failed == [] and out.shape == (len(paths), 3, 64, 64) and out.is_cuda
    crop = ci.decode_crop(64, flip=0.5)
    for i, p in enumerate(paths):
        got = out[i].float().permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        assert psnr(got, crop(p, sample_rng(0, 0, i))) > 26


def test_roi_align_equals_the_grid_sample_reference() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    g = torch.Generator().manual_seed(0)
    imgs = (torch.rand(4, 3, 120, 160, generator=g) * 255).cuda()
    boxes = torch.tensor([[0, 0, 160, 120], [10.0, 20, 90, 100], [33, 7, 150, 119], [50, 50, 60, 58]]).cuda()
    a = gpu.crop_resize(imgs, boxes, 32, 48, use_roi_align=True)
    b = gpu.crop_resize(imgs, boxes, 32, 48, use_roi_align=False)
    assert (a - b).abs().max() < 1.0  # 0..255 scale; the two differ only at clamped borders


def test_corrupt_jpeg_in_a_gpu_batch_is_found_and_named(jpeg_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))[:5]
    corrupt = bytearray(jpeg_bytes(make_image(60, 80)))
    corrupt[corrupt.find(b"\xff\xc0") + 4] = 7
    bad = tmp_path / "bad_gpu.jpg"
    bad.write_bytes(bytes(corrupt))
    read = ops.read_for_gpu(32)
    batch = collate([read((p, i), sample_rng(0, 0, i)) for i, p in enumerate(paths + [str(bad)])])
    skip = GpuLoader([batch], 32, decode="gpu", on_error="skip")
    (x, y), = list(skip)
    assert x.shape[0] == 5 and y.tolist() == [0, 1, 2, 3, 4] and x.is_cuda
    assert skip.stats()["decode"]["skipped"] == [str(bad)]
    with pytest.raises(SampleError, match="bad_gpu.jpg"):
        list(GpuLoader([batch], 32, decode="gpu"))


def test_auto_loader_on_cuda_produces_normalised_batches(jpeg_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))
    read = ops.read_for_gpu(48)
    samples = [read((p, i), sample_rng(0, 0, i)) for i, p in enumerate(paths)]
    batches = [collate(samples[i:i + 4]) for i in range(0, len(samples), 4)] * 3
    loader = GpuLoader(batches, 48, decode="auto", probe_batches=2, reevaluate_every=2)
    seen = 0
    for x, y in loader:
        assert x.is_cuda and x.dtype == torch.float32 and x.shape[1:] == (3, 48, 48)
        assert -3 < float(x.mean()) < 3
        seen += len(y)
    assert seen == 3 * len(paths)
    d = loader.stats()["decode"]
    assert d["mode"] in ("cpu", "gpu", "hybrid") and d["why"] and d["decisions"]
    loader.close()
