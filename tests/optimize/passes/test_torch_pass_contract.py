"""The TorchPass contract, run on every torch pass with the real digits CNN.

Each pass must: return a PassResult holding a *new* nn.Module (eval mode, same output shape), leave the
input model untouched (weights and train/eval mode), report params before/after, be deterministic for
ctx.seed, and produce a model that exports to ONNX and runs in ONNX Runtime with the same outputs.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("sklearn")

from cpuwise.errors import ConfigError  # noqa: E402
from cpuwise.optimize.passes import PassContext, PassResult, TorchPass  # noqa: E402
from cpuwise.optimize.passes.distill import DistillPass  # noqa: E402
from cpuwise.optimize.passes.lowrank import LowRankPass  # noqa: E402
from cpuwise.optimize.passes.prune import PrunePass  # noqa: E402
from cpuwise.zoo.digits import load_digits_data, train_digits_cnn  # noqa: E402

PASSES = {
    "prune": lambda: PrunePass(ratio=0.5, finetune_epochs=1),
    "lowrank": lambda: LowRankPass(energy=0.9, max_mac_fraction=1.0),
    "distill": lambda: DistillPass(width=0.5, epochs=1),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def digits_ctx(n_batches: int = 6, seed: int = 0) -> PassContext:
    xtr, ytr, xte, _ = load_digits_data()

    def batches():
        for i in range(n_batches):
            sl = slice(i * 64, (i + 1) * 64)
            yield (torch.from_numpy(xtr[sl]),), torch.from_numpy(ytr[sl])

    return PassContext(example_inputs=(torch.from_numpy(xte[:8]),), train_batches=batches,
                       task="classifier", seed=seed, time_budget_s=120)


@pytest.fixture(scope="module")
def digits_model() -> torch.nn.Module:
    return train_digits_cnn(seed=0)[0]


@pytest.mark.parametrize("name", sorted(PASSES))
def test_pass_contract(name: str, digits_model: torch.nn.Module) -> None:
    model = digits_model.train()  # a caller's model in train mode must stay in train mode
    before = copy.deepcopy(model.state_dict())
    ctx = digits_ctx()
    p: TorchPass = PASSES[name]()
    assert p.name == name
    assert p.applies(model, ctx)

    result = p.run(model, ctx)

    assert isinstance(result, PassResult) and isinstance(result.model, torch.nn.Module)
    assert result.model is not model
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not result.model.training
    assert result.params["params_after"] < result.params["params_before"] == sum(
        p.numel() for p in model.parameters())
    assert all(isinstance(n, str) for n in result.notes)

    x = ctx.example_inputs[0]
    model.eval()
    with torch.no_grad():
        ref, out = model(x), result.model(x)
    model.train()
    assert out.shape == ref.shape and torch.isfinite(out).all()

    again = PASSES[name]().run(model, digits_ctx())
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in result.model.state_dict().items())

    ort = pytest.importorskip("onnxruntime")
    buf = io.BytesIO()
    torch.onnx.export(result.model, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, out.numpy(), rtol=1e-3, atol=1e-4 * float(out.abs().max()))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PrunePass(ratio=0.0), "ratio"),
        (lambda: PrunePass(ratio=1.0), "ratio"),
        (lambda: PrunePass(ratio=-0.2), "ratio"),
        (lambda: PrunePass(importance="random"), "importance"),
        (lambda: PrunePass(round_to=0), "round_to"),
        (lambda: LowRankPass(energy=0.0), "energy"),
        (lambda: LowRankPass(energy=1.5), "energy"),
        (lambda: LowRankPass(max_mac_fraction=0.0), "max_mac_fraction"),
        (lambda: DistillPass(width=1.0), "width"),
        (lambda: DistillPass(layer_stride=1), "layer_stride"),
        (lambda: DistillPass(epochs=0), "epochs"),
    ],
)
def test_bad_parameters_raise_config_error(make, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


def test_energy_one_is_allowed_and_changes_nothing(digits_model: torch.nn.Module) -> None:
    result = LowRankPass(energy=1.0).run(digits_model, digits_ctx())
    assert result.params["layers_factorised"] == 0
    assert result.params["params_after"] == result.params["params_before"]


def test_distill_needs_training_data(digits_model: torch.nn.Module) -> None:
    ctx = PassContext(example_inputs=(torch.zeros(1, 1, 8, 8),), task="classifier")
    assert not DistillPass().applies(digits_model, ctx)
    with pytest.raises(ConfigError, match="train_batches"):
        DistillPass().run(digits_model, ctx)
