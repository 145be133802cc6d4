"""Sources over files: a list of paths (with labels), or a class-per-subfolder tree (ImageFolder)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cpuwise.data._files import regular_files
from cpuwise.data.dataset import Dataset
from cpuwise.data.formats.sequence import PairSequence, StrArray
from cpuwise.data.stages.source import SourceSpec
from cpuwise.errors import ConfigError

log = logging.getLogger("cpuwise.data")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")


def folder_listing(
    root: str | os.PathLike[str], extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS,
) -> tuple[list[str], list[int], list[str]]:
    """Class-per-subfolder listing (ImageFolder layout): sorted paths, labels, and class names.

    Regular files only (a FIFO named x.jpg would block its reader forever); symlinks are followed,
    each real directory once per class (see cpuwise.data._files.regular_files).
    """
    base = Path(root)
    if not base.is_dir():
        raise ConfigError(
            f"from_folder: expected a directory with one subfolder per class, found "
            f"{'nothing' if not base.exists() else 'a file'} at '{base}'. Fix: pass the data set root."
        )
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ConfigError(
            f"from_folder: expected class subfolders under '{base}', found none. Fix: arrange files as "
            "root/<class>/<file> (like torchvision ImageFolder)."
        )
    paths: list[str] = []
    labels: list[int] = []
    special: list[str] = []
    exts = tuple(e.lower() for e in extensions) if extensions else None
    for label, cls in enumerate(classes):
        found, skipped = regular_files(base / cls, lambda name: not exts or name.lower().endswith(exts))
        paths += found
        labels += [label] * len(found)
        special += skipped
    if special:
        log.warning("cpuwise.data: from_folder('%s') skipped %d entries that are not regular files "
                    "(FIFOs, sockets, devices, broken links), e.g. %s", base, len(special), special[:3])
    if not paths:
        raise ConfigError(
            f"from_folder: expected files with extensions {exts} under '{base}', found none. Fix: "
            "check the path, or pass extensions=() to take every file."
        )
    return paths, labels, classes


def from_files(paths: Iterable[str | os.PathLike[str]], labels: Sequence[int] | None = None) -> Dataset:
    """Samples `path` (or `(path, label)` when labels are given), in the given order."""
    plist = [os.fspath(p) for p in paths]
    lab = None
    if labels is not None:
        lab = np.asarray(labels, dtype=np.int64)
        if lab.shape != (len(plist),):
            raise ConfigError(f"from_files: expected {len(plist)} labels (one per path), found shape "
                              f"{lab.shape}. Fix: pass one int label per path.")
    return Dataset(SourceSpec("from_files", seq=PairSequence(StrArray(plist), lab)))


def from_folder(root: str | os.PathLike[str], extensions: tuple[str, ...] | None = None) -> Dataset:
    """Class-per-subfolder data (ImageFolder layout): sorted `(path, label)` samples; `ds.classes`.

    Args:
        extensions: file endings to take (default: common image formats; None in the tuple sense
            means the default, pass () to take every file).
    """
    exts = IMAGE_EXTENSIONS if extensions is None else (extensions or None)
    paths, labels, classes = folder_listing(root, exts)
    seq = PairSequence(StrArray(paths), np.asarray(labels, dtype=np.int64))
    return Dataset(SourceSpec(f"from_folder({os.fspath(root)})", seq=seq, classes=classes))
