"""The GPU path's logic on the CPU: same boxes as the CPU ops, batched crop-resize, the loader."""

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
from cpuwise.errors import ConfigError, SampleError

torch = pytest.importorskip("torch")


def cpu_decode(datas: list[bytes], device: object) -> tuple[list[object], list[int]]:
    """Stands in for nvJPEG: CHW uint8 tensors, None + index for what does not decode."""
    out, failed = [], []
    for i, d in enumerate(datas):
        try:
            out.append(torch.from_numpy(ops.decode()(d)).permute(2, 0, 1).contiguous())
        except SampleError:
            out.append(None)
            failed.append(i)
    return out, failed


def test_read_for_gpu_draws_the_same_box_and_flip_as_decode_crop(jpeg_dir: Path) -> None:
    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))
    crop, read = ci.decode_crop(40, flip=0.5), ops.read_for_gpu(40, flip=0.5)
    for i, p in enumerate(paths):
        (buf, params, name), label = read((p, i), sample_rng(3, 0, i))
        assert name == p and label == i and buf == Path(p).read_bytes()
        rng = sample_rng(3, 0, i)
        box = crop.box(rng, int(params[5]), int(params[6]))
        assert tuple(params[:4]) == tuple(box) and bool(params[4]) == (rng.random() < 0.5)


def test_batched_crop_resize_matches_the_cpu_path(jpeg_dir: Path) -> None:
    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))
    read = ops.read_for_gpu(48, flip=0.5)
    samples = [read((p, 0), sample_rng(0, 0, i)) for i, p in enumerate(paths)]
    (datas, params, names), _ = collate(samples)
    out, failed = gpu.decode_batch(datas, params, (48, 48), "cpu", decode=cpu_decode)
    assert failed == [] and out.shape == (len(paths), 3, 48, 48)
    crop = ci.decode_crop(48, flip=0.5)
    for i, p in enumerate(paths):  # same crops for the same seed: content agrees within resampling
        ref = crop(p, sample_rng(0, 0, i))
        got = out[i].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        assert psnr(got, ref) > 26, (i, psnr(got, ref))


def test_grid_crop_resize_is_exact_on_an_integer_box() -> None:
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 4.0, 6.0, 8.0]])
    out = gpu.crop_resize(img, boxes, 4, 4, use_roi_align=False)
    ref0 = img[0].reshape(3, 4, 2, 4, 2).mean(dim=(2, 4))  # 2x2 bins = 2x2 average
    assert torch.allclose(out[0], ref0, atol=1e-4)
    # 1:1 scale: +-0.25 px samples average back to the pixel on a linear ramp (clamped at the edge)
    assert torch.allclose(out[1][:, :3, :3], img[1, :, 4:7, 2:5], atol=1e-4)


def _batches(paths: list[str], bs: int, size: int = 40) -> list[object]:
    read = ops.read_for_gpu(size)
    samples = [read((p, i), sample_rng(0, 0, i)) for i, p in enumerate(paths)]
    return [collate(samples[i:i + bs]) for i in range(0, len(samples), bs)]


def test_loader_hybrid_equals_cpu_mode_and_reports_its_split(jpeg_dir: Path) -> None:
    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))
    batches = _batches(paths, 4)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    cpu = list(GpuLoader(batches, 40, decode="cpu", device="cpu", mean=mean, std=std, cpu_workers=2))
    hyb_loader = GpuLoader(batches, 40, decode="hybrid", device="cpu", mean=mean, std=std, cpu_workers=2,
                           gpu_decode_fn=cpu_decode, probe_batches=1, reevaluate_every=1)
    hyb = list(hyb_loader)
    assert len(cpu) == len(hyb) == 3
    for (xc, yc), (xh, yh) in zip(cpu, hyb, strict=True):
        assert xc.shape == (4, 3, 40, 40) and xc.dtype == torch.float32
        assert xc.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(yc, yh)
        assert (xc - xh).abs().mean() < 0.1  # normalised units: resampling differences only
    d = hyb_loader.stats()["decode"]
    assert d["mode"] == "hybrid" and 0 < d["gpu_fraction"] < 1 and d["why"]
    assert d["images"]["gpu"] > 0 and d["images"]["cpu"] > 0
    assert d["rates"]["cpu_img_s_per_worker"] > 0 and d["rates"]["gpu_decode_img_s"] > 0
    assert d["decisions"]
    hyb_loader.close()


def test_loader_on_error_skip_and_raise(jpeg_dir: Path, tmp_path: Path) -> None:
    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))[:4]
    corrupt = bytearray(jpeg_bytes(make_image(60, 80)))
    sof = corrupt.find(b"\xff\xc0")
    corrupt[sof + 4] = 7  # 7-bit samples: the header parses, every decoder refuses the data
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(bytes(corrupt))
    batches = _batches(paths + [str(bad)], 5)
    for mode in ("cpu", "gpu"):
        skip = GpuLoader(batches, 40, decode=mode, device="cpu", on_error="skip", gpu_decode_fn=cpu_decode)
        (x, y), = list(skip)
        assert len(x) == 4 and y.tolist() == [0, 1, 2, 3]
        assert skip.stats()["decode"]["skipped"] == [str(bad)]
        with pytest.raises(SampleError, match="bad.jpg"):
            list(GpuLoader(batches, 40, decode=mode, device="cpu", gpu_decode_fn=cpu_decode))


def test_loader_passes_predecoded_batches_through() -> None:
    imgs = np.stack([make_image(16, 16, seed=i) for i in range(3)])
    (x, y), = list(GpuLoader([(imgs, np.arange(3))], 16, device="cpu", mean=(0, 0, 0), std=(1, 1, 1)))
    assert torch.allclose(x * 255, torch.from_numpy(imgs).permute(0, 3, 1, 2).float(), atol=1e-3)
    assert y.tolist() == [0, 1, 2]


def test_loader_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="decode must be one of"):
        GpuLoader([], decode="fast", device="cpu")
    with pytest.raises(ConfigError, match="torchvision"):
        GpuLoader([], decode="gpu", device="cpu")


@pytest.mark.parametrize("mode", ["cpu", "gpu", "hybrid"], ids=["all_cpu", "all_device", "hybrid"])
def test_split_pipeline_through_the_engine(jpeg_dir: Path, mode: str) -> None:
    import cpuwise.data as cd

    split = ci.decode_split(40, gpu_fraction=0.5)
    ds = cd.from_folder(str(jpeg_dir)).shuffle(seed=1).map(split, workers=2).batch(4, collate=split.collate)
    loader = GpuLoader(ds, 40, decode=mode, device="cpu", split=split, gpu_decode_fn=cpu_decode,
                       probe_batches=100)
    got = list(loader)
    assert sum(len(y) for _, y in got) == 12
    counts = loader.stats()["decode"]["images"]
    assert (counts["gpu"] == 0) == (mode == "cpu") and (counts["cpu"] == 0) == (mode == "gpu")
    ref = cd.from_folder(str(jpeg_dir)).shuffle(seed=1).map(ci.decode_crop(40, flip=0.5), workers=2).batch(4)
    mean, std = torch.tensor(loader.mean).view(1, 3, 1, 1), torch.tensor(loader.std).view(1, 3, 1, 1)
    for (x, y), (rx, ry) in zip(got, ref, strict=True):
        assert y.tolist() == ry.tolist()
        rx = (torch.from_numpy(rx).permute(0, 3, 1, 2).float() / 255 - mean) / std
        assert (x - rx).abs().mean() < 0.1  # same crops and flips; the device side resamples differently
    loader.close()


def test_split_control_is_shared_with_copies() -> None:
    import pickle

    split = ci.decode_split(8, gpu_fraction=0.25)
    copy = pickle.loads(pickle.dumps(split))
    assert copy.control.get() == 0.25
    split.control.set(0.75)
    assert copy.control.get() == 0.75
    path = split.control.path
    del split
    import gc

    gc.collect()
    assert not Path(path).exists()  # the creator's file is removed with it


def test_loader_emits_its_split_to_the_doctor(jpeg_dir: Path, tmp_path: Path) -> None:
    import json

    from cpuwise import _channel as channel

    path = tmp_path / "channel.jsonl"
    channel.set_path(str(path))
    try:
        paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))
        list(GpuLoader(_batches(paths, 4), 40, decode="cpu", device="cpu", cpu_workers=1))
    finally:
        channel.set_path(None)
    from cpuwise.testing.channel import step_lanes

    records = [json.loads(line) for line in path.read_text().splitlines()]
    stats = [r["p"] for r in records if r["k"] == "pipeline_stats"]
    (lane,) = step_lanes(path)
    assert lane.n == 2 and stats  # 3 batches; the loader reports no end, so the third step stays open
    assert stats[-1]["decode"]["mode"] == "cpu" and stats[-1]["decode"]["images"]["cpu"] == 12


def test_an_image_the_gpu_refuses_is_decoded_on_the_cpu(jpeg_dir: Path) -> None:
    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))[:4]

    def picky(datas: list[bytes], device: object) -> tuple[list[object], list[int]]:
        out, failed = cpu_decode(datas, device)
        out[0] = None  # e.g. a CMYK JPEG nvJPEG cannot read
        return out, sorted({0, *failed})

    loader = GpuLoader(_batches(paths, 4), 40, decode="gpu", device="cpu", gpu_decode_fn=picky)
    (x, y), = list(loader)
    ref, = list(GpuLoader(_batches(paths, 4), 40, decode="cpu", device="cpu"))
    assert len(x) == 4 and torch.allclose(x[0], ref[0][0], atol=1e-4)
    assert not loader.stats()["decode"]["skipped"] and y.tolist() == [0, 1, 2, 3]


def test_leaving_the_loop_early_stops_the_producer(jpeg_dir: Path) -> None:
    import threading

    paths = sorted(str(p) for p in jpeg_dir.rglob("*.jpg"))
    loader = GpuLoader(_batches(paths, 1) * 20, 40, decode="cpu", device="cpu", depth=1)
    it = iter(loader)
    next(it)
    it.close()  # type: ignore[attr-defined]
    assert not any(t.name == "cpuwise-gpu-loader" and t.is_alive() for t in threading.enumerate())
    loader.close()
