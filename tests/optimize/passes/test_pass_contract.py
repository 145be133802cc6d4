"""The pass contract (cpuwise.testing.passes.check_pass) on every registered pass, each on a small model.

A registered pass without a case here fails the suite: every pass is checked the way the search runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cpuwise.optimize.passes import REGISTERED, pass_class
from cpuwise.testing.passes import PassCase, check_pass

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# pass name -> the fixture with a model that gives the pass something to measure
CASES = {
    "io": "sequence_case",  # token ids + attention mask
    "session": "mlp_case",
    "fuse": "bert_case",  # one BERT layer: ORT's optimizer fuses its attention
    "int8": "mlp_case",
    "prune": "mlp_case",
    "lowrank": "mlp_case",
    "distill": "mlp_case",
}


class Pool(torch.nn.Module):
    """Mean-pooled token embeddings: a sequence model in a few lines."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(64, 16)
        self.lin = torch.nn.Linear(16, 16)

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        m = attention_mask.unsqueeze(-1).float()
        return (self.lin(self.emb(input_ids)) * m).sum(1) / m.sum(1)


@pytest.fixture(scope="module")
def mlp_case(digits_mlp: Any, tmp_path_factory: pytest.TempPathFactory) -> PassCase:
    model, x, _ = digits_mlp
    work = tmp_path_factory.mktemp("mlp")
    return PassCase.build(model, (x[:96],), work, task="classifier", max_drop=0.02, time_budget_s=15)


@pytest.fixture(scope="module")
def sequence_case(token_rows: Any, tmp_path_factory: pytest.TempPathFactory) -> PassCase:
    return PassCase.build(Pool().eval(), token_rows(), tmp_path_factory.mktemp("seq"), task="embedding")


@pytest.fixture(scope="module")
def bert_case(tiny_bert: Any, token_rows: Any, tmp_path_factory: pytest.TempPathFactory) -> PassCase:
    return PassCase.build(tiny_bert(), token_rows(16, 12), tmp_path_factory.mktemp("bert"), task="embedding")


@pytest.fixture(scope="module")
def file_case(mlp_case: PassCase, tmp_path_factory: pytest.TempPathFactory) -> PassCase:
    """The MLP given as an ONNX file: no torch module."""
    x = mlp_case.setup.judge.feed
    return PassCase.build(str(mlp_case.setup.graph), x, tmp_path_factory.mktemp("file"), task="classifier")


def test_every_registered_pass_has_a_contract_case() -> None:
    missing, stale = set(REGISTERED) - set(CASES), set(CASES) - set(REGISTERED)
    assert not missing, f"add a case to CASES for the registered passes {sorted(missing)}"
    assert not stale, f"CASES names passes that are not registered: {sorted(stale)}"


@pytest.mark.parametrize("name", REGISTERED)
def test_pass_contract(name: str, request: pytest.FixtureRequest) -> None:
    if name not in CASES:
        pytest.fail(f"no contract case for the registered pass {name!r}: add one to CASES")
    case: PassCase = request.getfixturevalue(CASES[name])
    out = check_pass(pass_class(name)(), case)
    assert any(c.technique == name and c.ok for c in out.candidates), [c.dropped for c in out.candidates]


NEEDY = [n for n in REGISTERED if pass_class(n).needs - {"onnx"}]


@pytest.mark.parametrize("name", NEEDY)
def test_pass_on_a_model_without_what_it_needs_is_skipped_with_a_note(
    name: str, mlp_case: PassCase, file_case: PassCase
) -> None:
    case = mlp_case if "sequence" in pass_class(name).needs else file_case
    out = check_pass(pass_class(name)(), case)
    assert not out.candidates and out.notes and out.notes[0].startswith(f"{name}: skipped, it needs")


def test_the_contract_catches_a_pass_that_changes_its_input(mlp_case: PassCase, tmp_path: Path) -> None:
    from cpuwise.optimize.passes import Basis, Outcome, Pass, Plan
    from cpuwise.optimize.search.judge import Judge

    class Scribble(Pass):
        name = "scribble"
        needs = frozenset({"torch"})

        def propose(self, basis: Basis, plan: Plan, judge: Judge) -> Outcome:
            basis.module.train()  # flips the caller's model into training mode
            return Outcome(notes=["scribble: wrote on the model"])

    model = mlp_case.basis.module
    try:
        with pytest.raises(AssertionError, match="changed its input in place"):
            check_pass(Scribble(), mlp_case)
    finally:
        model.eval()


@pytest.fixture(scope="module")
def ov_mlp_case(digits_mlp: Any, tmp_path_factory: pytest.TempPathFactory) -> PassCase:
    pytest.importorskip("openvino")
    model, x, _ = digits_mlp
    return PassCase.build(model, (x[:96],), tmp_path_factory.mktemp("ov-mlp"), task="classifier",
                          max_drop=0.02, runtime_names=["openvino"])


@pytest.fixture(scope="module")
def ov_sequence_case(token_rows: Any, tmp_path_factory: pytest.TempPathFactory) -> PassCase:
    pytest.importorskip("openvino")
    return PassCase.build(Pool().eval(), token_rows(), tmp_path_factory.mktemp("ov-seq"), task="embedding",
                          runtime_names=["openvino"])


EVERY_RUNTIME = [n for n in REGISTERED if pass_class(n).graph and pass_class(n).runtimes is None]


@pytest.mark.parametrize("name", EVERY_RUNTIME)
def test_graph_passes_keep_the_contract_on_openvino(name: str, request: pytest.FixtureRequest) -> None:
    case: PassCase = request.getfixturevalue("ov_sequence_case" if name == "io" else "ov_mlp_case")
    assert case.basis.runtime == "openvino"
    out = check_pass(pass_class(name)(), case)
    assert any(c.technique == name and c.ok and c.runtime == "openvino" for c in out.candidates), \
        [c.dropped for c in out.candidates]


def test_a_pass_for_another_runtime_is_skipped_with_a_note(ov_mlp_case: PassCase) -> None:
    out = check_pass(pass_class("fuse")(), ov_mlp_case)
    assert not out.candidates and out.notes[0].startswith("fuse: not for OpenVINO")
