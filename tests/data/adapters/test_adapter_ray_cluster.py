"""Ray Data backend on a ray.cluster_utils.Cluster of two simulated nodes (1 CPU each): the code a real
cluster runs (`ray.init(address=...)`), giving the same items as the local pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from engine_fns import Jitter, arange16, square
from ray_fns import fail_on_7s

import cpuwise.data as cd
from cpuwise.testing.stages import plain

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:ray.*")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    pytest.importorskip("ray.data")
    from ray_session import ray_session

    with ray_session(nodes=2) as ray:
        yield ray


def test_two_nodes_give_the_local_pipelines_items(ray_cluster: Any) -> None:
    assert len([n for n in ray_cluster.nodes() if n["Alive"]]) == 2
    local = (cd.from_sequence(list(range(48))).shuffle(seed=8).map(square).map(fail_on_7s, on_error="skip")
             .map(arange16).map(Jitter()).batch(6))
    ray_ds = local.to_ray()

    def samples(batches: Any) -> list[Any]:
        return sorted(s for b in batches for s in zip(plain(list(b[0])), plain(list(b[1])), strict=True))

    assert samples(cd.from_ray(ray_ds)) == samples(local)
