"""The DataLoader drop-in: same batches as torch's, every sample once per epoch, resume, shards."""

from __future__ import annotations

from collections import namedtuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from cpuwise.data.adapters.torch import DataLoader  # noqa: E402
from cpuwise.errors import ConfigError  # noqa: E402


class Squares(torch.utils.data.Dataset):  # type: ignore[misc]
    """A map-style dataset returning (image tensor, int label), as torchvision datasets do."""

    def __init__(self, n: int = 23) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return torch.full((3, 4, 4), float(i)), i


def _ids(batches) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(v) for _, y in batches for v in y]


def test_same_batches_as_torch_without_shuffle() -> None:
    ds = Squares()
    ours = list(DataLoader(ds, batch_size=5, num_workers=0))
    theirs = list(torch.utils.data.DataLoader(ds, batch_size=5))
    assert len(ours) == len(theirs) == 5
    for (x1, y1), (x2, y2) in zip(ours, theirs, strict=True):
        assert isinstance(x1, torch.Tensor) and x1.dtype == x2.dtype and y1.dtype == y2.dtype == torch.int64
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_shuffle_every_sample_once_new_order_per_epoch_and_set_epoch_replays() -> None:
    loader = DataLoader(Squares(), batch_size=4, shuffle=True, drop_last=False, num_workers=0, seed=3)
    assert len(loader) == 6
    e0, e1 = _ids(loader), _ids(loader)
    assert sorted(e0) == sorted(e1) == list(range(23))
    assert e0 != e1
    loader.set_epoch(0)
    assert _ids(loader) == e0
    loader.sampler.set_epoch(1)  # what DistributedSampler users call
    assert _ids(loader) == e1


def test_worker_processes_give_the_same_order() -> None:
    import numpy as np

    # A numpy array is a map-style dataset too; it keeps torch out of the worker processes (fast start).
    data = np.arange(40 * 2).reshape(40, 2)
    inline_loader = DataLoader(data, batch_size=8, shuffle=True, num_workers=0, seed=1)
    inline = [r.tolist() for b in inline_loader for r in b]
    loader = DataLoader(data, batch_size=8, shuffle=True, num_workers=2, seed=1)
    try:
        batches = list(loader)
        assert all(isinstance(b, torch.Tensor) and b.dtype == torch.int64 for b in batches)
        assert [r.tolist() for b in batches for r in b] == inline
        assert loader.stats()["config"]["backend"] == "process"
        assert sorted(r[0] // 2 for r in inline) == list(range(40))
    finally:
        loader.close()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), bs=st.integers(1, 12), drop_last=st.booleans(), shuffle=st.booleans(),
       seed=st.integers(0, 3))
def test_every_sample_once_per_epoch(n: int, bs: int, drop_last: bool, shuffle: bool, seed: int) -> None:
    loader = DataLoader(Squares(n), batch_size=bs, shuffle=shuffle, drop_last=drop_last, num_workers=0,
                        seed=seed)
    batches = list(loader)
    ids = _ids(batches)
    assert len(batches) == len(loader)
    assert len(ids) == len(set(ids)) == (n // bs * bs if drop_last else n)
    assert all(len(y) == bs for _, y in batches[:-1])
    if not shuffle:
        assert ids == sorted(ids)


def test_drop_last_and_custom_collate_get_tensors() -> None:
    seen = []

    def collate(samples):  # type: ignore[no-untyped-def]
        seen.append(type(samples[0][0]))
        return torch.stack([s[0] for s in samples]), [s[1] for s in samples]

    loader = DataLoader(Squares(10), batch_size=4, drop_last=True, collate_fn=collate, num_workers=0)
    out = list(loader)
    assert len(loader) == len(out) == 2 and out[1][1] == [4, 5, 6, 7]
    assert set(seen) == {torch.Tensor}


def test_a_namedtuple_batch_from_a_custom_collate_moves_to_the_device() -> None:
    Pair = namedtuple("Pair", ["x", "y"])  # before the shared tree walker, moving it raised TypeError

    def collate(samples):  # type: ignore[no-untyped-def]
        return Pair(torch.stack([s[0] for s in samples]), torch.tensor([s[1] for s in samples]))

    loader = DataLoader(Squares(6), batch_size=3, collate_fn=collate, num_workers=0, device="cpu")
    assert [b[1].tolist() for b in loader] == [[0, 1, 2], [3, 4, 5]]


def test_resume_mid_epoch_yields_exactly_the_rest() -> None:
    loader = DataLoader(Squares(), batch_size=3, shuffle=True, num_workers=0, seed=7)
    full = _ids(DataLoader(Squares(), batch_size=3, shuffle=True, num_workers=0, seed=7))
    got: list[int] = []
    for _, y in loader:
        got += y.tolist()
        if len(got) == 9:
            state = loader.state_dict()
            break
    fresh = DataLoader(Squares(), batch_size=3, shuffle=True, num_workers=0, seed=7)
    fresh.load_state_dict(state)
    assert got + _ids(fresh) == full


def test_distributed_sampler_shards_are_disjoint_and_equal() -> None:
    ds = Squares(23)
    shards = []
    for rank in range(3):
        sampler = torch.utils.data.distributed.DistributedSampler(ds, num_replicas=3, rank=rank, shuffle=True)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=0)
        assert len(loader.sampler) == 8
        shards.append(_ids(loader))
    assert all(len(s) == 8 for s in shards)
    assert set().union(*map(set, shards)) == set(range(23))  # padded by repeating, like torch


def test_unsupported_arguments_say_what_to_use() -> None:
    with pytest.raises(ConfigError, match="batch_sampler"):
        DataLoader(Squares(), batch_sampler=[[0, 1]])
    with pytest.raises(ConfigError, match="map-style"):
        DataLoader(iter(range(3)))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sampler"):
        DataLoader(Squares(), sampler=torch.utils.data.WeightedRandomSampler([1.0] * 23, 23))
    with pytest.raises(ConfigError, match="batch_size"):
        DataLoader(Squares(), batch_size=0)


@pytest.mark.gpu
def test_device_and_pin_memory_on_cuda() -> None:
    loader = DataLoader(Squares(10), batch_size=4, num_workers=0, pin_memory=True, device="cuda")
    batches = list(loader)
    assert all(x.is_cuda and y.is_cuda for x, y in batches)
    assert _ids([(x, y.cpu()) for x, y in batches]) == list(range(10))
    pinned = next(iter(DataLoader(Squares(10), batch_size=4, num_workers=0, pin_memory=True)))
    assert pinned[0].is_pinned() and not pinned[0].is_cuda


def test_distributed_sampler_maps_onto_shard_with_a_global_reshuffle_each_epoch() -> None:
    ds = Squares(23)
    sampler_cls = torch.utils.data.distributed.DistributedSampler
    for rank in range(3):  # unshuffled: exactly DistributedSampler's indices, pads included
        sampler = sampler_cls(ds, num_replicas=3, rank=rank, shuffle=False)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=0)
        assert _ids(loader) == list(sampler) == list(loader.sampler)
    shares = []
    for epoch in range(2):
        ranks = []
        for rank in range(3):
            sampler = torch.utils.data.distributed.DistributedSampler(ds, num_replicas=3, rank=rank, seed=5)
            loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=0)
            loader.set_epoch(epoch)
            ranks.append(_ids(loader))
        real = ranks[0][:8] + ranks[1][:8] + ranks[2][:7]  # the 24th position is a pad
        assert sorted(real) == list(range(23)), "disjoint and every sample once per epoch"
        shares.append(set(ranks[0]))
    assert shares[0] != shares[1], "each epoch deals a new global permutation (not a fixed shard)"


def test_ddp_ranks_need_no_sampler(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two gloo ranks (processes): the drop-in and to_torch() shard by themselves; a filter that
    drops different samples in each rank still gives equal steps (an all_reduce every step)."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(__file__).with_name("ddp_job.py")
    root = Path(__file__).resolve().parents[3]
    env_base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
                "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path)], env={**env_base, "RANK": str(r)})
             for r in range(2)]
    try:
        codes = [p.wait(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0, 0]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for name in ("loader", "to_torch"):
        for epoch in range(2):
            a, b = ranks[0][name][epoch], ranks[1][name][epoch]
            assert len(a) == len(b) == 12 and sorted(a[:12] + b[:11]) == list(range(23))
        assert ranks[0][name][0] != ranks[0][name][1]
    for epoch in range(2):
        a, b = ranks[0]["filtered"][epoch], ranks[1]["filtered"][epoch]
        assert len(a) == len(b) == 12, "equal steps although each rank dropped different samples"
        assert set(a) | set(b) == {x for x in range(23) if x % 5}
