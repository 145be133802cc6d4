"""cpuwise.data's public surface: every name in __all__ resolves (the lazy ones on first use)."""

from __future__ import annotations

import cpuwise.data as cd


def test_every_name_in_all_resolves() -> None:
    assert len(set(cd.__all__)) == len(cd.__all__)
    for name in cd.__all__:
        assert getattr(cd, name) is not None, name
