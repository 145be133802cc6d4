"""Sources: compact str sequences, folders (ImageFolder layout), file lists and iterable factories."""

from __future__ import annotations

from pathlib import Path

import pytest

import cpuwise.data as cd
from cpuwise.data.formats.sequence import StrArray


def test_str_array_round_trips_and_is_compact() -> None:
    paths = [f"/data/train/class_{i % 7}/img_{i:07d}.jpg" for i in range(5000)] + ["ünïcode/ß.jpg", ""]
    arr = StrArray(paths)
    assert len(arr) == len(paths) and list(arr) == paths and arr[-2] == "ünïcode/ß.jpg"
    with pytest.raises(IndexError):
        arr[len(paths)]
    assert arr.nbytes < sum(len(p) for p in paths) + 8 * (len(paths) + 1) + 64
    ds = cd.from_sequence(paths)
    assert isinstance(ds._chain()[0].seq, StrArray) and list(ds) == paths


def test_from_folder_sorted_with_labels_and_classes(tmp_path: Path) -> None:
    for cls in ("b_dog", "a_cat"):
        (tmp_path / cls / "sub").mkdir(parents=True)
        for name in ("2.jpg", "1.png", "sub/0.jpeg", "skip.txt", ".hidden.jpg"):
            (tmp_path / cls / name).write_bytes(b"x")
    ds = cd.from_folder(tmp_path)
    assert ds.classes == ["a_cat", "b_dog"] and len(ds) == 6
    got = [(Path(p).relative_to(tmp_path).as_posix(), y) for p, y in ds]
    assert got == [("a_cat/1.png", 0), ("a_cat/2.jpg", 0), ("a_cat/sub/0.jpeg", 0),
                   ("b_dog/1.png", 1), ("b_dog/2.jpg", 1), ("b_dog/sub/0.jpeg", 1)]
    with pytest.raises(AttributeError):
        cd.from_sequence([1]).classes  # noqa: B018


def test_from_files_and_iterable_factory() -> None:
    assert list(cd.from_files(["a", "b"], labels=[3, 4])) == [("a", 3), ("b", 4)]
    assert list(cd.from_files([Path("x")])) == ["x"]
    ds = cd.from_iterable(lambda: (i * 2 for i in range(4)))
    assert list(ds) == list(ds) == [0, 2, 4, 6]
    with pytest.raises(TypeError, match="not known"):
        len(ds)
