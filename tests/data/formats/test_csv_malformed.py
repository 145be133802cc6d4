"""Malformed CSV files give clear errors naming the file (issue 14, item 2): duplicate column names
(pyarrow used to return twice the rows), ragged rows, empty, blank and binary files."""

from __future__ import annotations

from pathlib import Path

import pytest

import cpuwise.data as cd
from cpuwise.errors import ConfigError

pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
ENGINES = ["pyarrow", "pandas", "auto"]


def csv(tmp_path: Path, body: bytes, name: str = "data.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(body)
    return p


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicate_column_names_are_an_error(tmp_path: Path, engine: str) -> None:
    p = csv(tmp_path, b"a,b,a,c,c\n1,2,3,4,5\n6,7,8,9,10\n")
    with pytest.raises(ConfigError) as info:
        cd.from_csv(p, engine=engine)
    msg = str(info.value)
    assert str(p) in msg and "duplicate column names ['a', 'c']" in msg and "Fix:" in msg


@pytest.mark.parametrize("engine", ["pyarrow", "auto"])
def test_a_ragged_row_names_the_file_line_and_counts(tmp_path: Path, engine: str) -> None:
    p = csv(tmp_path, b"a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n11,12,13\n")
    with pytest.raises(ConfigError) as info:
        cd.from_csv(p, engine=engine)
    msg = str(info.value)
    assert str(p) in msg and "line 4" in msg and "expected 3 fields (as in the header), found 4" in msg
    assert "Fix:" in msg


def test_a_ragged_row_with_pandas_names_the_file_too(tmp_path: Path) -> None:
    p = csv(tmp_path, b"a,b,c\n1,2,3\n7,8,9,10\n")
    want = r"expected 3 fields \(as in the header\), found 4 on line 3"
    with pytest.raises(ConfigError, match=want) as info:
        cd.from_csv(p, engine="pandas")
    assert str(p) in str(info.value)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("body,found", [(b"", "an empty file"), (b"\n\n  \n", "no header line")])
def test_empty_and_blank_files(tmp_path: Path, engine: str, body: bytes, found: str) -> None:
    p = csv(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        cd.from_csv(p, engine=engine)
    assert str(p) in str(info.value) and found in str(info.value) and "Fix:" in str(info.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_binary_file_is_named_as_such(tmp_path: Path, engine: str) -> None:
    body = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    p = csv(tmp_path, body, "image.csv")
    with pytest.raises(ConfigError) as info:
        cd.from_csv(p, engine=engine)
    msg = str(info.value)
    assert str(p) in msg and "not UTF-8 text" in msg and "byte 0x89 at offset 0" in msg


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_utf8_after_the_header_names_the_line(tmp_path: Path, engine: str) -> None:
    p = csv(tmp_path, b"a,b\n1,x\n2,y\n\xff\xfe,z\n")
    with pytest.raises(ConfigError) as info:
        cd.from_csv(p, engine=engine)
    msg = str(info.value)
    assert str(p) in msg and "not UTF-8 text" in msg and "line 4" in msg


@pytest.mark.parametrize("engine", ["pyarrow", "pandas"])
def test_bad_bytes_far_into_the_file_are_found_by_the_scan(tmp_path: Path, engine: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from cpuwise.data.formats import csv_check

    monkeypatch.setattr(csv_check, "HEAD_BYTES", 16)  # the head check passes; the scan crosses blocks
    rows = "a,b\n" + "".join(f"{i},é{i}\n" for i in range(40))  # 2-byte characters cut by blocks
    p = csv(tmp_path, rows.encode() + b"41,\xc3(\n")
    with pytest.raises(ConfigError, match=r"found byte 0xc3 at offset \d+ \(line 42\)") as info:
        cd.from_csv(p, engine=engine)
    assert int(str(info.value).split("at offset ")[1].split()[0]) == len(rows.encode()) + 3


def test_a_fifo_is_not_opened(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"found a FIFO"):
        cd.from_csv(fifo)


def test_good_files_still_read_the_same(tmp_path: Path) -> None:
    p = csv(tmp_path, "\ufeffx,y,label\n1,2,a\n3,4,b\n".encode())
    for engine in ENGINES:
        t = cd.from_csv(p, label="label", engine=engine)
        assert [(list(map(float, x)), int(y)) for x, y in t] == [([1.0, 2.0], 0), ([3.0, 4.0], 1)]
