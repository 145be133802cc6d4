"""to_torch: layout, dtype, on-device normalisation, zero-copy, passthrough, doctor reporting."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cpuwise.data.adapters._base import Wrapped  # noqa: E402
from cpuwise.data.adapters.torch import to_torch  # noqa: E402
from cpuwise.errors import ConfigError  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _batches(n: int = 3, b: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (b, 6, 5, 3), dtype=np.uint8), rng.integers(0, 10, b).astype(np.int32))
            for _ in range(n)]


def _reference(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64).transpose(0, 3, 1, 2) / 255.0
    return (x - np.array(MEAN)[None, :, None, None]) / np.array(STD)[None, :, None, None]


def test_images_become_normalised_nchw_and_labels_int64() -> None:
    data = _batches()
    out = list(to_torch(data, normalize=(MEAN, STD)))
    assert len(out) == 3
    for (img, lab), (x, y) in zip(data, out, strict=True):
        assert x.shape == (4, 3, 6, 5) and x.dtype == torch.float32 and x.is_contiguous()
        np.testing.assert_allclose(x.numpy(), _reference(img), rtol=1e-5, atol=1e-5)
        assert y.dtype == torch.int64 and y.tolist() == lab.tolist()


def test_mean_std_in_pixel_units_and_imagenet_name_match() -> None:
    data = _batches(1)
    a = next(iter(to_torch(data, normalize=(MEAN, STD))))[0]
    b = next(iter(to_torch(data, normalize=([m * 255 for m in MEAN], [s * 255 for s in STD]))))[0]
    c = next(iter(to_torch(data, normalize="imagenet")))[0]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_channels_last_layout_and_dtype() -> None:
    x, _ = next(iter(to_torch(_batches(1), normalize="imagenet", channels_last=True, dtype=torch.bfloat16)))
    assert x.dtype == torch.bfloat16
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def test_without_normalize_images_stay_uint8_or_scale_to_unit_range() -> None:
    data = _batches(1)
    raw, _ = next(iter(to_torch(data)))
    assert raw.dtype == torch.uint8 and raw.shape == (4, 3, 6, 5)
    assert raw.permute(0, 2, 3, 1).numpy().tolist() == data[0][0].tolist()
    unit, _ = next(iter(to_torch(data, dtype=torch.float32)))
    np.testing.assert_allclose(unit.numpy(), data[0][0].transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)


def test_cpu_float_arrays_are_zero_copy_and_read_only_arrays_are_copied() -> None:
    feats = np.arange(12, dtype=np.float32).reshape(3, 4)
    (t,) = next(iter(to_torch([(feats,)])))
    assert np.shares_memory(t.numpy(), feats)
    ro = feats.copy()
    ro.flags.writeable = False
    (t2,) = next(iter(to_torch([(ro,)])))  # no "not writable" warning (warnings are errors here)
    assert not np.shares_memory(t2.numpy(), ro) and t2.tolist() == ro.tolist()


def test_structure_and_non_arrays_pass_through() -> None:
    batch = {"image": np.zeros((2, 4, 4, 1), np.uint8), "path": ["a.jpg", "b.jpg"],
             "w": np.ones(2, np.float64), "tokens": np.ones((2, 3), np.int16)}
    out = next(iter(to_torch([batch], dtype=torch.float32)))
    assert out["path"] == ["a.jpg", "b.jpg"]
    assert out["image"].shape == (2, 1, 4, 4) and out["image"].dtype == torch.float32
    assert out["w"].dtype == torch.float32 and out["tokens"].dtype == torch.int64


def test_bad_arguments_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match="mean, std"):
        to_torch([], normalize=(1, 2, 3))
    with pytest.raises(ConfigError, match="std must be > 0"):
        to_torch([], normalize=((0.5,), (0.0,)))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            to_torch([], device="cuda")
    with pytest.raises(ConfigError, match="channel"):
        next(iter(to_torch([(np.zeros((1, 2, 2, 1), np.uint8),)], normalize="imagenet")))


class _Counting:
    """A dataset with state: the number of batches pulled so far."""

    def __init__(self, n: int) -> None:
        self.n, self.pos, self.epoch = n, 0, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):  # type: ignore[no-untyped-def]
        while self.pos < self.n:
            self.pos += 1
            yield (np.full((1,), self.pos - 1, np.int64),)

    def set_epoch(self, e: int) -> None:
        self.epoch = e

    def state_dict(self) -> dict[str, int]:
        return {"pos": self.pos}

    def load_state_dict(self, s: dict[str, int]) -> None:
        self.pos = s["pos"]


def test_len_set_epoch_and_state_pass_through() -> None:
    ds = _Counting(5)
    it = to_torch(ds)
    assert len(it) == 5
    it.set_epoch(3)
    assert ds.epoch == 3
    seen = []
    for (y,) in it:
        seen.append(int(y))
        if len(seen) == 2:
            state = it.state_dict()
            break
    ds2 = _Counting(5)
    it2 = to_torch(ds2)
    it2.load_state_dict(state)
    assert [int(y) for (y,) in it2] == [2, 3, 4]


def test_lookahead_state_counts_only_delivered_batches() -> None:
    ds = _Counting(5)
    w = Wrapped(ds)
    delivered, states = [], []
    for item in w._ahead(lambda b: b):
        delivered.append(int(item[0][0]))
        states.append(w.state_dict()["pos"])
    assert delivered == [0, 1, 2, 3, 4]
    assert states == [1, 2, 3, 4, 5]  # although the source is always one batch further
    assert w.state_dict()["pos"] == 5


def test_doctor_channel_gets_one_note_per_batch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cpuwise import _channel as channel

    path = tmp_path / "chan.jsonl"
    channel.set_path(str(path))
    try:
        assert len(list(to_torch(_batches(3)))) == 3
    finally:
        channel.set_path(None)
    from cpuwise.testing.channel import step_lanes

    (lane,) = step_lanes(path)
    assert lane.n == 3 and lane.epoch_starts == 1  # a step per batch; the iteration's end closes the last
    assert lane.data_wait_s >= 0 and lane.compute_s >= 0


def test_on_a_cpuwise_pipeline_resume_and_single_reporting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import cpuwise.data as cd
    from cpuwise import _channel as channel

    samples = [(np.full((2, 2, 3), i, np.uint8), i) for i in range(10)]
    ds = cd.from_sequence(samples).shuffle(seed=2).batch(3)
    it = ds.to_torch(normalize="imagenet")
    assert len(it) == 4
    path = tmp_path / "chan.jsonl"
    channel.set_path(str(path))
    try:
        order = [int(v) for _, y in it for v in y]
    finally:
        channel.set_path(None)
    assert sorted(order) == list(range(10))
    from cpuwise.testing.channel import step_lanes, step_sources

    (lane,) = step_lanes(path)
    assert lane.n == 4 and lane.epoch_starts == 1  # one iteration of 4 batches
    assert step_sources(path) == {"cpuwise.data"}  # the engine reports; we do not repeat it
    ds.set_epoch(0)
    got = []
    for _, y in it:
        got += y.tolist()
        if len(got) == 6:
            state = it.state_dict()
            break
    ds2 = cd.from_sequence(samples).shuffle(seed=2).batch(3)
    it2 = ds2.to_torch(normalize="imagenet")
    it2.load_state_dict(state)
    assert got + [int(v) for _, y in it2 for v in y] == order


@pytest.mark.gpu
def test_cuda_matches_cpu_and_resumes_exactly() -> None:
    data = _batches(4)
    cpu = [x for x, _ in to_torch(data, normalize="imagenet")]
    gpu = [x for x, _ in to_torch(data, device="cuda", normalize="imagenet", channels_last=True)]
    for a, b in zip(cpu, gpu, strict=True):
        assert b.is_cuda and b.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(a, b.cpu(), rtol=1e-5, atol=1e-5)
    ds = _Counting(6)
    it = to_torch(ds, device="cuda")
    got = []
    for (y,) in it:
        got.append(int(y.item()))
        if len(got) == 3:
            state = it.state_dict()
            break
    ds2 = _Counting(6)
    ds2.load_state_dict(state)
    assert got + [int(y.item()) for (y,) in to_torch(ds2, device="cuda")] == list(range(6))
