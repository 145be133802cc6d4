"""The contract every optimize pass passes: run it on a small model the way the search does, and check it.

    case = PassCase.build(model, (x,), tmp_path, task="classifier")   # a torch module or an .onnx path
    outcome = check_pass(MyPass(), case)                               # AssertionError names what broke

The contract: a pass has a name and declares only known needs; given a basis it returns an `Outcome` with
measured candidates, or with a note starting with its name that says why it has nothing to measure;
it never changes its input in place (the torch model's weights and train/eval mode, the graph file, the
basis's best candidate); every candidate names what it did (a name, and the pass's name as its technique,
or "int8" for the INT8 versions a torch pass derives); a new basis, if any, keeps the model as given.
cpuwise's own suite runs it on every registered pass (tests/optimize/passes/test_pass_contract.py).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpuwise.optimize.passes import NEEDS, Basis, Outcome, Pass
from cpuwise.optimize.search import loop
from cpuwise.optimize.search.choose import Budget


@dataclass
class PassCase:
    """A prepared search on a small model: the basis, plan and judge a pass gets from the search loop."""

    setup: loop.Setup
    basis: Basis

    @classmethod
    def build(
        cls,
        model: Any,
        inputs: Any,
        work: str | Path,
        *,
        task: str = "generic",
        max_drop: float | str = 0.01,
        **prepare: Any,
    ) -> PassCase:
        """Export `model` into `work`, measure its reference and its default graph, as `optimize()` does.

        Args:
            model: a torch module, or a path to a model file (then torch passes are skipped).
            inputs: the evaluation rows (a tuple of arrays in input order, or a dict).
            prepare: more `search.loop.prepare` arguments; `quick=True` and no torch timing by default.
        """
        work = Path(work)
        work.mkdir(parents=True, exist_ok=True)
        prepare.setdefault("quick", True)
        prepare.setdefault("measure_reference", False)
        setup = loop.prepare(model, eval_inputs=inputs, work=work, task=task, budget=Budget.parse(max_drop),
                             **prepare)
        bases, _, _ = loop.start(setup)
        return cls(setup, bases[0])


def check_pass(p: Pass, case: PassCase) -> Outcome:
    """Run `p` on `case` as the search does (`Pass.step`) and check the pass contract.

    Returns:
        The pass's outcome, for checks of its own.
    """
    assert isinstance(p, Pass), f"expected a cpuwise.optimize.passes.Pass, got {type(p).__name__}"
    assert isinstance(p.name, str) and p.name, f"{type(p).__name__} needs a `name` (what --passes calls it)"
    unknown = sorted(p.needs - set(NEEDS))
    assert not unknown, f"{p.name}: unknown needs {unknown}; expected some of {sorted(NEEDS)}"
    basis = case.basis
    before = _snapshot(basis)

    out = p.step(basis, case.setup.plan, case.setup.judge)

    assert isinstance(out, Outcome), f"{p.name}: step() must return an Outcome, got {type(out).__name__}"
    after = _snapshot(basis)
    changed = [k for k in before if before[k] != after.get(k)]
    assert not changed, f"{p.name} changed its input in place: {changed}"
    assert all(isinstance(n, str) and n for n in out.notes), f"{p.name}: notes must be non-empty strings"
    if not out.candidates:
        assert any(n.startswith(f"{p.name}:") for n in out.notes), (
            f"{p.name} returned no candidates and no note saying why (a note starting with '{p.name}:'); "
            f"notes: {out.notes}"
        )
    for c in out.candidates:
        assert c.name, f"{p.name}: a candidate without a name"
        assert c.technique in (p.name, "int8"), (
            f"{p.name}: candidate {c.name!r} has technique {c.technique!r}; expected {p.name!r} (or 'int8' "
            "for derived INT8 versions)"
        )
        if not c.dropped:
            assert c.model_path is not None and Path(c.model_path).is_file(), (
                f"{p.name}: candidate {c.name!r} points at no model file ({c.model_path})"
            )
    if out.candidates and not any(c.technique == p.name for c in out.candidates):
        raise AssertionError(f"{p.name}: no candidate carries the pass's name as its technique")
    if out.basis is not None:
        assert isinstance(out.basis, Basis), f"{p.name}: Outcome.basis must be a Basis"
        assert out.basis.module is basis.module, f"{p.name}: a new basis must keep the model as given"
    return out


def _snapshot(basis: Basis) -> dict[str, Any]:
    """What a pass must leave as it found it: the model's weights and mode, the graph file, the basis."""
    snap: dict[str, Any] = {
        "graph": hashlib.blake2b(basis.graph.read_bytes(), digest_size=16).hexdigest(),
        "best": copy.deepcopy(basis.best.to_dict()),
        "settings": basis.settings,
        "io": basis.io,
    }
    if basis.module is not None:
        snap["training"] = basis.module.training
        snap["weights"] = {k: _digest(v) for k, v in basis.module.state_dict().items()}
    return snap


def _digest(tensor: Any) -> str:
    t = tensor.detach().cpu()
    try:
        data = t.numpy().tobytes()
    except TypeError:  # bfloat16 has no numpy dtype; float32 holds it exactly
        data = t.float().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()
