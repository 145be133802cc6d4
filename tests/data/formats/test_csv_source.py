"""from_csv / CsvTable: row samples, label encoding, engines agree, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cpuwise.data.formats.csv import CsvTable, load_csv_table
from cpuwise.errors import ConfigError

pytest.importorskip("pandas")


@pytest.fixture()
def iris_like(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    species = ["setosa", "virginica", "versicolor"]
    lines = ["sepal,petal,width,species"]
    for i in range(50):
        a, b, c = rng.normal(size=3).round(3)
        lines.append(f"{a},{b},{c},{species[i % 3]}")
    p = tmp_path / "iris.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("engine", ["pyarrow", "pandas"])
def test_numeric_features_and_text_label(iris_like: Path, engine: str) -> None:
    t = load_csv_table(iris_like, label="species", engine=engine)
    assert len(t) == 50 and t.features == ["sepal", "petal", "width"]
    assert t.classes == ["setosa", "versicolor", "virginica"]
    x, y = t[1]
    assert x.dtype == np.float32 and x.shape == (3,)
    assert t.classes[int(y)] == "virginica"
    row = iris_like.read_text().splitlines()[2].split(",")
    np.testing.assert_allclose(x, [float(v) for v in row[:3]], rtol=1e-6)
    X, Y = t.to_arrays()
    assert X.shape == (50, 3) and Y is not None and Y.dtype == np.int64


def test_engines_agree_and_chunks_do_not_change_rows(iris_like: Path) -> None:
    a = load_csv_table(iris_like, label="species", engine="pyarrow")
    b = load_csv_table(iris_like, label="species", engine="pandas", chunksize=7)
    c = load_csv_table(iris_like, label="species", engine="pyarrow", chunksize=3)
    for i in (0, 17, 49, -1):
        for other in (b, c):
            np.testing.assert_array_equal(a[i][0], other[i][0])
            assert a[i][1] == other[i][1]


def test_mixed_columns_give_tuples_and_dicts(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("name,age,score\nann,31,1.5\nbob,,2.0\n")
    t = load_csv_table(p)
    assert t[0] == ("ann", 31.0, 1.5)
    assert np.isnan(t[1][1])  # a missing int becomes NaN
    d = load_csv_table(p, as_dict=True)[0]
    assert d == {"name": "ann", "age": 31.0, "score": 1.5} and type(d["name"]) is str
    only = load_csv_table(p, columns=["score"])
    assert only[1].tolist() == [2.0]
    with pytest.raises(ConfigError, match="numeric"):
        t.to_arrays()


def test_index_errors_and_slices() -> None:
    t = CsvTable({"a": np.arange(4.0)}, ["a"], None)
    assert [float(r[0]) for r in t[1:3]] == [1.0, 2.0]
    with pytest.raises(IndexError):
        t[4]


def test_missing_file_and_column_errors(tmp_path: Path, iris_like: Path) -> None:
    with pytest.raises(ConfigError, match="expected a CSV file") as e:
        load_csv_table(tmp_path / "nope.csv")
    assert "iris.csv" in str(e.value)  # names the CSV files that are there
    with pytest.raises(ConfigError, match=r"expected column\(s\) \['Species'\], found columns") as e2:
        load_csv_table(iris_like, label="Species")
    assert "case-sensitive" in str(e2.value)


def test_empty_label_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "y.csv"
    p.write_text("x,y\n1,0.5\n2,\n")
    with pytest.raises(ConfigError, match="label column 'y'"):
        load_csv_table(p, label="y")


def test_type_change_after_first_block_falls_back_to_pandas(tmp_path: Path) -> None:
    p = tmp_path / "late.csv"
    rows = ["a,b"] + [f"{i},{i}" for i in range(20000)] + ["x,1.5"]
    p.write_text("\n".join(rows) + "\n")
    t = load_csv_table(p, chunksize=100)
    assert len(t) == 20001 and t[-1] == ("x", 1.5)


def test_from_csv_is_a_dataset_that_shuffles_globally(iris_like: Path) -> None:
    from cpuwise.data import from_csv

    ds = from_csv(iris_like, label="species")
    assert ds.classes == ["setosa", "versicolor", "virginica"] and len(ds) == 50
    rows = [int(y) for _, y in ds]
    shuffled = [int(y) for _, y in ds.shuffle(seed=1)]
    assert sorted(rows) == sorted(shuffled) and rows != shuffled
    xb, yb = next(iter(from_csv(iris_like, label="species").batch(8)))
    assert xb.shape == (8, 3) and xb.dtype == np.float32 and yb.dtype == np.int64
