"""Image ops for cpuwise.data (uint8 HWC on the CPU) and the GPU decode path (`cpuwise.data.image.gpu`).

    import cpuwise.data as cd
    ds = cd.from_folder("train/").shuffle(seed=0).map(cd.image.decode_crop(224)).map(cd.image.random_flip())

Heavy libraries (OpenCV, simplejpeg, torch) load on first use, not on import.
"""

from __future__ import annotations

from cpuwise.data.image.geometry import Box, center_crop_box, random_resized_crop_box, reduction_factor
from cpuwise.data.image.ops import (
    center_crop,
    decode,
    decode_center_crop,
    decode_crop,
    random_flip,
    read_bytes,
    read_for_gpu,
    resize,
)
from cpuwise.data.image.split import SplitBatch, SplitControl, decode_split

__all__ = [
    "SplitBatch",
    "SplitControl",
    "decode_split",
    "Box",
    "center_crop",
    "center_crop_box",
    "decode",
    "decode_center_crop",
    "decode_crop",
    "random_flip",
    "random_resized_crop_box",
    "read_bytes",
    "read_for_gpu",
    "reduction_factor",
    "resize",
]
