"""from_csv: a CSV file read into numpy columns, indexable per row so shuffling is global.

The file is parsed once (pyarrow's multi-threaded CSV reader when installed, pandas otherwise) into one
numpy array per column. Rows are built on access, so a pipeline holds a few large arrays rather than
millions of small Python objects (which forked workers would copy on read, page by page).

Samples, per row:
- numeric feature columns: `x` is a 1-D float32 vector of them; the sample is `(x, y)` with a `label`
  column, `x` alone without one. Batches then collate to `(N, F)` float32 and `(N,)` labels.
- any non-numeric feature column: the sample is a tuple of one value per column (then the label).
- `as_dict=True`: `{column: value}` per row, label included.
A text label column is encoded as int64 class indices; `table.classes` lists the names (sorted).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise._optional import available, require
from cpuwise.data.dataset import Dataset
from cpuwise.data.formats.csv_check import check_header, describe_missing, explain
from cpuwise.data.stages.source import SourceSpec
from cpuwise.errors import ConfigError


class CsvTable(Sequence[Any]):
    """Rows of a CSV file held as numpy columns; `table[i]` builds row i's sample."""

    def __init__(
        self,
        columns: dict[str, np.ndarray],
        features: list[str],
        label: str | None,
        *,
        as_dict: bool = False,
        dtype: Any = np.float32,
        classes: list[str] | None = None,
        path: str = "",
    ) -> None:
        self.data = columns
        self.features = features
        self.label = label
        self.as_dict = as_dict
        self.classes = classes
        self.path = path
        self._len = len(next(iter(columns.values()))) if columns else 0
        numeric = all(np.issubdtype(columns[c].dtype, np.number) for c in features)
        # One (N, F) block for numeric features makes a row one contiguous slice instead of F lookups.
        self._matrix = (
            np.stack([columns[c] for c in features], axis=1).astype(dtype, copy=False)
            if numeric and features and not as_dict
            else None
        )

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        i = int(index)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"row {index} is out of range for {self.path or 'the table'} ({self._len} rows)")
        if self.as_dict:
            return {name: _value(col[i]) for name, col in self.data.items()}
        y = self.data[self.label][i] if self.label is not None else None
        if self._matrix is not None:
            x = self._matrix[i]
            return x if y is None else (x, y)
        values = tuple(_value(self.data[c][i]) for c in self.features)
        return values if y is None else (*values, y)

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The whole table as (features (N, F), labels (N,) or None): for models that take arrays."""
        if self._matrix is None:
            raise ConfigError(
                f"to_arrays() needs numeric feature columns, found non-numeric ones in {self.features}; "
                "fix: pass columns=[...] naming numeric columns only."
            )
        return self._matrix, (self.data[self.label] if self.label is not None else None)


def _value(v: Any) -> Any:
    """Strings come back as Python str (numpy str_ pickles and prints awkwardly)."""
    return str(v) if isinstance(v, np.str_ | str) else v


def _read_pyarrow(path: str, chunksize: int | None) -> dict[str, np.ndarray]:
    pa_csv = require("pyarrow.csv", extra="tabular", purpose="reading CSV files")
    opts = {}
    if chunksize:
        # Blocks of about `chunksize` rows, estimated from the first lines' mean length.
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        line_bytes = max(1, len(head) // max(1, head.count(b"\n")))
        opts["read_options"] = pa_csv.ReadOptions(block_size=max(1 << 16, chunksize * line_bytes))
    parts: dict[str, list[np.ndarray]] = {}
    with pa_csv.open_csv(path, **opts) as reader:
        names = reader.schema.names
        if len(set(names)) != len(names):  # check_header reads the same line: a disagreement is a bug
            raise ConfigError(f"{path!r}: expected distinct column names, found {names}. Fix: rename the "
                              "repeated columns in the file's first line.")
        for name in names:
            parts[name] = []
        for batch in reader:
            for name, col in zip(names, batch.columns, strict=True):
                parts[name].append(_arrow_to_numpy(col))
    return {n: (np.concatenate(p) if p else np.empty(0)) for n, p in parts.items()}


def _arrow_to_numpy(col: Any) -> np.ndarray:
    import pyarrow as pa  # lazy: the tabular extra, needed only when pyarrow reads the file

    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return np.asarray(col.to_pylist(), dtype=object).astype(str)
    if col.null_count and pa.types.is_integer(col.type):
        col = col.cast(pa.float64())  # a missing int becomes NaN, as pandas does
    arr = np.asarray(col.to_numpy(zero_copy_only=False))
    return arr.astype(str) if arr.dtype == object else arr


def _read_pandas(path: str, chunksize: int | None) -> dict[str, np.ndarray]:
    pd = require("pandas", extra="tabular", purpose="reading CSV files")
    if chunksize:
        frame = pd.concat(list(pd.read_csv(path, chunksize=chunksize)), ignore_index=True)
    else:
        frame = pd.read_csv(path)
    out: dict[str, np.ndarray] = {}
    for name in frame.columns:
        arr = frame[name].to_numpy()
        out[str(name)] = arr.astype(str) if arr.dtype == object else arr
    return out


def read_csv_columns(path: str | os.PathLike[str], *, chunksize: int | None = None,
                     engine: str = "auto") -> dict[str, np.ndarray]:
    """Parse a CSV file into {column: numpy array}. engine: "auto" (pyarrow, else pandas) | "pyarrow" |
    "pandas". A file whose later rows change a column's type (pyarrow infers from the first block)
    is re-read with pandas. A file that is not a table (empty, binary, duplicate column names, ragged
    rows) is a ConfigError naming the file, the line and the fix (see csv_check)."""
    p = Path(path)
    if not p.is_file():
        near = sorted(x.name for x in p.parent.glob("*.csv"))[:10] if p.parent.is_dir() else []
        raise ConfigError(
            f"expected a CSV file at {str(p)!r}, found {describe_missing(str(p))}"
            + (f" (CSV files beside it: {near})" if near else "")
            + "; fix: check the path (relative paths start at the current directory, "
            + f"{os.getcwd()!r})."
        )
    if engine not in ("auto", "pyarrow", "pandas"):
        raise ConfigError(f"engine must be 'auto', 'pyarrow' or 'pandas', got {engine!r}.")
    check_header(str(p))  # empty, blank, binary, duplicate names: an error naming the file
    if engine == "pandas" or (engine == "auto" and not available("pyarrow")):
        return _read(str(p), "pandas", chunksize)
    try:
        return _read_pyarrow(str(p), chunksize)
    except Exception as exc:  # pyarrow.ArrowInvalid: a type changed after the first block
        if engine == "pyarrow" or not available("pandas") or "conversion error" not in str(exc).lower():
            raise explain(str(p), "pyarrow", exc) from exc
        return _read(str(p), "pandas", chunksize)


def _read(path: str, engine: str, chunksize: int | None) -> dict[str, np.ndarray]:
    """Read with `engine`; its errors (ragged rows, bad bytes) become a ConfigError naming the file."""
    try:
        return _read_pandas(path, chunksize) if engine == "pandas" else _read_pyarrow(path, chunksize)
    except Exception as exc:
        raise explain(path, engine, exc) from exc


def load_csv_table(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    label: str | None = None,
    *,
    chunksize: int | None = None,
    as_dict: bool = False,
    dtype: Any = np.float32,
    engine: str = "auto",
) -> CsvTable:
    """Read `path` and pick the feature `columns` (default: all but `label`) and the `label` column."""
    data = read_csv_columns(path, chunksize=chunksize, engine=engine)
    found = list(data)
    wanted = list(columns) if columns is not None else [c for c in found if c != label]
    missing = [c for c in [*wanted, *([label] if label is not None else [])] if c not in data]
    if missing:
        raise ConfigError(
            f"{str(path)!r}: expected column(s) {missing}, found columns {found}; fix: pass names from "
            "the header line (they are case-sensitive), or check that the file has a header row."
        )
    classes: list[str] | None = None
    keep = {c: data[c] for c in dict.fromkeys([*wanted, *([label] if label else [])])}
    if label is not None:
        y = keep[label]
        if y.dtype.kind in "fc" and np.isnan(y).any():
            bad = np.flatnonzero(np.isnan(y))[:5].tolist()
            raise ConfigError(
                f"{str(path)!r}: expected a value in label column {label!r} on every row, found "
                f"{int(np.isnan(y).sum())} empty (rows {bad}...); fix: drop or fill those rows first."
            )
        if y.dtype.kind in "UO":
            names, codes = np.unique(y.astype(str), return_inverse=True)
            classes = [str(n) for n in names]
            keep[label] = codes.astype(np.int64)
        elif y.dtype.kind in "iub":
            keep[label] = y.astype(np.int64)
    return CsvTable(keep, wanted, label, as_dict=as_dict, dtype=dtype, classes=classes, path=str(path))


def from_csv(
    path: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    label: str | None = None,
    *,
    chunksize: int | None = None,
    as_dict: bool = False,
    dtype: Any = np.float32,
    engine: str = "auto",
) -> Dataset:
    """A cpuwise Dataset over the rows of a CSV file (see the module docstring for the sample shape).

    Example:
        ds = cd.from_csv("train.csv", label="species").shuffle(seed=0).batch(64)
        for x, y in ds: ...            # x: (64, F) float32, y: (64,) int64
    """
    table = load_csv_table(path, columns, label, chunksize=chunksize, as_dict=as_dict, dtype=dtype,
                           engine=engine)
    # ds.classes (like from_folder) when the label column holds class names
    return Dataset(SourceSpec(f"from_csv({os.fspath(path)})", seq=table, classes=table.classes))
