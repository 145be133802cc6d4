"""Bad arguments fail at once with expected / found / fix."""

from __future__ import annotations

import pytest

import cpuwise.data as cd
from cpuwise.errors import ConfigError
from cpuwise.host import usable_cores


def square(x: int) -> int:
    return x * x


BASE = cd.from_sequence(list(range(10)))


@pytest.mark.parametrize("call,found", [
    (lambda: BASE.batch(0), "found 0"),
    (lambda: BASE.batch(-3), "found -3"),
    (lambda: BASE.batch(2.5), "found 2.5"),
    (lambda: BASE.map(square, workers=0), "found 0"),
    (lambda: BASE.map(square, workers="many"), "found 'many'"),
    (lambda: BASE.map(square, on_error="ignore"), "found 'ignore'"),
    (lambda: BASE.map(square, backend="gpu"), "found 'gpu'"),
    (lambda: BASE.map(42), "found int"),
    (lambda: BASE.map(square, hang_timeout=0), "found 0"),
    (lambda: BASE.filter(None), "found NoneType"),
    (lambda: BASE.prefetch(0), "found 0"),
    (lambda: BASE.repeat(0), "found 0"),
    (lambda: BASE.shuffle(seed="a"), "found 'a'"),
    (lambda: BASE.map(square, cpu_budget=usable_cores() + 1), f"found {usable_cores() + 1}"),
    (lambda: BASE.with_budget(cpu_budget=0), "found 0"),
    (lambda: BASE.with_budget(ram_budget_bytes=-1), "found -1"),
    (lambda: BASE.prefetch(cpu_budget=10_000), "found 10000"),
    (lambda: cd.from_sequence(5), "found int"),
    (lambda: cd.from_files(["a", "b"], labels=[1]), "found shape (1,)"),
])
def test_bad_arguments_say_expected_found_fix(call, found: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    msg = str(info.value)
    assert "expected" in msg and found in msg and "Fix" in msg


def test_from_folder_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="expected a directory"):
        cd.from_folder(tmp_path / "missing")
    with pytest.raises(ConfigError, match="class subfolders"):
        cd.from_folder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("hi")
    with pytest.raises(ConfigError, match="found none"):
        cd.from_folder(tmp_path)
    assert list(cd.from_folder(tmp_path, extensions=())) == [(str(tmp_path / "a" / "x.txt"), 0)]


def test_process_backend_needs_a_picklable_function(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # as if cloudpickle were not installed
    ds = BASE.map(lambda x: x, backend="process")
    with pytest.raises(ConfigError, match="backend='thread'"):
        list(ds)
    auto = BASE.map(lambda x: x + 1, workers=2)
    assert list(auto) == list(range(1, 11))
    assert auto.stats()["config"]["backend"] == "thread"  # auto falls back to threads, and says so
