"""The GPU decode path: batched nvJPEG decode, one batched crop-resize, flip and normalise on the device.

    imgs, bad = decode_batch(datas, params, (224, 224), device="cuda")   # uint8 bytes -> float NCHW

`decode_batch` first runs the structural check every decoder runs (`checks.jpeg_info` under the
decode policy: truncation, restart intervals, progressive scans, the pixel limit), so a file the
check refuses never reaches nvJPEG. Damage inside the entropy-coded data of a baseline JPEG without
restart markers cannot be seen without decoding: that is left to nvJPEG's own errors. Then it hands
the batch to `torchvision.io.decode_jpeg(list, device="cuda")` (batched nvJPEG). If that call fails
(a corrupt JPEG in the batch), it decodes image by image to find the bad ones; the caller tries
those on the CPU (nvJPEG rejects a few valid files, e.g. CMYK), where a decoder that reports corrupt
data decides, and applies the on_error policy to the rest. Crop + resize is `crop_resize` over all
images of one shape at once: torchvision's `roi_align` where present, else the same sampling with
torch's `grid_sample` (the CPU reference used in tests). The crop boxes come from `geometry`, as on
the CPU.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from cpuwise._optional import available, require
from cpuwise.data.image.checks import STRICT, DecodeError, DecodePolicy, jpeg_info

SAMPLING = 2  # bilinear samples per output pixel and axis, averaged (roi_align's sampling_ratio)


def _torch() -> Any:
    return require("torch", purpose="the GPU decode path")


def boxes_xyxy(params: np.ndarray) -> np.ndarray:
    """[top, left, height, width, ...] rows -> float [x1, y1, x2, y2] in continuous pixel coordinates."""
    p = params.astype(np.float64)
    return np.stack([p[:, 1], p[:, 0], p[:, 1] + p[:, 3], p[:, 0] + p[:, 2]], axis=1)


def _grid_crop_resize(imgs: Any, boxes: Any, out_h: int, out_w: int) -> Any:
    """roi_align(aligned=True, sampling_ratio=SAMPLING) written with grid_sample (torch only)."""
    torch = _torch()
    n, _, h, w = imgs.shape
    s = SAMPLING
    dev, dt = imgs.device, imgs.dtype
    # sample positions inside each output bin, in [0, 1] of the box
    fy = (torch.arange(out_h * s, device=dev, dtype=torch.float32) + 0.5) / (out_h * s)
    fx = (torch.arange(out_w * s, device=dev, dtype=torch.float32) + 0.5) / (out_w * s)
    b = boxes.to(device=dev, dtype=torch.float32)
    ys = b[:, 1:2] + fy[None] * (b[:, 3:4] - b[:, 1:2])  # pixel coords, centres at k + 0.5
    xs = b[:, 0:1] + fx[None] * (b[:, 2:3] - b[:, 0:1])
    gy = (ys * 2 / h - 1)[:, :, None].expand(n, out_h * s, out_w * s)
    gx = (xs * 2 / w - 1)[:, None, :].expand(n, out_h * s, out_w * s)
    grid = torch.stack([gx, gy], dim=-1).to(dt)
    out = torch.nn.functional.grid_sample(imgs, grid, mode="bilinear", padding_mode="border",
                                          align_corners=False)
    return torch.nn.functional.avg_pool2d(out, s) if s > 1 else out


def crop_resize(imgs: Any, boxes: Any, out_h: int, out_w: int, use_roi_align: bool | None = None) -> Any:
    """Crop `boxes` (N x 4 xyxy) out of `imgs` (N x C x H x W float) and resize to out_h x out_w."""
    torch = _torch()
    if use_roi_align is None:
        use_roi_align = imgs.is_cuda and available("torchvision")
    if not use_roi_align:
        return _grid_crop_resize(imgs, boxes, out_h, out_w)
    ops = require("torchvision.ops", extra="gpu", purpose="batched crop-resize on the GPU")
    idx = torch.arange(len(imgs), device=imgs.device, dtype=imgs.dtype)[:, None]
    rois = torch.cat([idx, boxes.to(device=imgs.device, dtype=imgs.dtype)], dim=1)
    return ops.roi_align(imgs, rois, (out_h, out_w), spatial_scale=1.0, sampling_ratio=SAMPLING,
                         aligned=True)


def _decode_all(datas: list[bytes], device: Any) -> tuple[list[Any], list[int]]:
    """nvJPEG decode of the batch; per image on failure. Returns (CHW uint8 or None, failed idx)."""
    torch = _torch()
    tvio = require("torchvision.io", extra="gpu", purpose="nvJPEG decoding")
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    try:
        return list(tvio.decode_jpeg(tensors, mode=tvio.ImageReadMode.RGB, device=device)), []
    except RuntimeError:
        pass
    out: list[Any] = []
    failed: list[int] = []
    for i, t in enumerate(tensors):
        try:
            out.append(tvio.decode_jpeg(t, mode=tvio.ImageReadMode.RGB, device=device))
        except RuntimeError:
            out.append(None)
            failed.append(i)
    return out, failed


def refused(datas: list[bytes], policy: DecodePolicy = STRICT) -> list[int]:
    """Positions of the JPEGs the decode policy refuses (the structural check, no decoding)."""
    bad = []
    for i, d in enumerate(datas):
        try:
            if jpeg_info(d, policy) is None:
                bad.append(i)  # not a JPEG: nvJPEG decodes JPEGs only
        except DecodeError:
            bad.append(i)
    return bad


def decode_batch(datas: list[bytes], params: np.ndarray, size: tuple[int, int], device: Any = "cuda",
                 decode: Any = None, policy: DecodePolicy = STRICT) -> tuple[Any, list[int]]:
    """Decode, crop, resize and flip a batch on `device`: (float N x 3 x H x W in 0..255, failed idx).

    Rows of failed images (refused by the policy's check, or by nvJPEG) are left as zeros; the caller
    drops them or raises (on_error). `decode(datas, device)` may replace the nvJPEG step (tests pass a
    CPU decoder).
    """
    torch = _torch()
    out_h, out_w = size
    n = len(datas)
    dt = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    bad = refused(datas, policy)
    keep = [i for i in range(n) if i not in set(bad)]
    some, failed_some = (decode or _decode_all)([datas[i] for i in keep], device) if keep else ([], [])
    imgs: list[Any] = [None] * n
    for j, i in enumerate(keep):
        imgs[i] = some[j]
    failed = sorted(bad + [keep[j] for j in failed_some])
    out = torch.zeros((n, 3, out_h, out_w), dtype=dt, device=device)
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, img in enumerate(imgs):
        if img is not None:
            groups[tuple(img.shape)].append(i)
    boxes = torch.from_numpy(boxes_xyxy(params))
    for idx in groups.values():
        stacked = torch.stack([imgs[i] for i in idx]).to(dt)
        sel = torch.as_tensor(idx)
        res = crop_resize(stacked, boxes[sel], out_h, out_w)
        out[sel.to(out.device)] = res.to(dt)
    flips = torch.from_numpy(params[:, 4].astype(bool)).to(device, non_blocking=True)
    out = torch.where(flips[:, None, None, None], out.flip(-1), out)
    return out, failed


def normalize(x: Any, mean: tuple[float, ...], std: tuple[float, ...], channels_last: bool = True) -> Any:
    """(x / 255 - mean) / std as float32 in one fused multiply-add; x is N x 3 x H x W in 0..255."""
    torch = _torch()
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    y = torch.addcmul(-m / s, x.float(), 1.0 / (255.0 * s))
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y
