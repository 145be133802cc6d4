"""Low-rank factorisation: SVD for Linear layers, Tucker-2 for Conv2d, with ranks chosen by energy.

Linear W (out x in) ~= U_r S_r V_r^T becomes Linear(in -> r) then Linear(r -> out). A k x k Conv2d
with weight W (O, I, k, k) becomes conv1x1(I -> R_in), conv kxk(R_in -> R_out) with the original stride
/ padding, conv1x1(R_out -> O) (Tucker-2 on the channel modes: HOSVD initialisation refined by a few
HOOI sweeps); a 1x1 conv is treated like a Linear. Ranks keep `energy` of the squared singular values of
each unfolding; for a conv feeding a BatchNorm the weight is first scaled by the BN's per-channel gain,
because BN amplifies low-norm channels and the error that matters is the one after BN. Depthwise /
grouped convs are skipped, and a layer is only replaced where the factorised form needs at most
`max_mac_fraction` of its MACs at the example input's size. The result is plain `nn.Sequential`s of
Linear/Conv2d, so it exports to ONNX. Fewer MACs is not always faster (tensorly #35): the search measures
the candidate on this CPU and chooses it only if it is the fastest within the accuracy budget.

    result = LowRankPass(energy=0.95).run(model, PassContext(example_inputs=(x,)))
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from cpuwise._optional import require
from cpuwise.errors import ConfigError
from cpuwise.optimize.passes._torchutil import (
    as_inputs,
    clone,
    count_macs,
    count_params,
    run_hooked,
    train_student,
)
from cpuwise.optimize.passes.torchpass import PassContext, PassResult, TorchPass

if TYPE_CHECKING:  # pragma: no cover
    import torch

HOOI_SWEEPS = 2


def rank_for_energy(singular_values: torch.Tensor, energy: float) -> int:
    """Smallest r whose leading singular values hold `energy` of the total squared sum."""
    s2 = singular_values.double().pow(2)
    frac = s2.cumsum(0) / s2.sum().clamp(min=1e-30)
    return int(min(len(s2), int((frac < energy - 1e-12).sum()) + 1))


class LowRankPass(TorchPass):
    """Factorise Linear (SVD) and Conv2d (Tucker-2) layers where it saves MACs.

    Args:
        energy: fraction of squared singular values kept per layer, in (0, 1].
        max_mac_fraction: replace a layer only if the factorised MACs are <= this fraction of the original.
        finetune_epochs: optional fine-tune passes over ctx.train_batches (teacher-matching), 0 = none.
        lr: AdamW learning rate of that fine-tune.
        skip_output_layer: leave the last Linear/Conv that runs (the classifier) untouched.
    """

    name = "lowrank"
    trains = True

    def __init__(self, energy: float = 0.95, max_mac_fraction: float = 0.8, finetune_epochs: int = 0,
                 lr: float = 1e-4, skip_output_layer: bool = False) -> None:
        if not 0.0 < energy <= 1.0:
            raise ConfigError(
                f"energy must be in (0, 1] (fraction of squared singular values kept), got {energy!r}"
            )
        if not 0.0 < max_mac_fraction <= 1.0:
            raise ConfigError(f"max_mac_fraction must be in (0, 1], got {max_mac_fraction!r}")
        if finetune_epochs < 0 or lr <= 0:
            raise ConfigError(f"finetune_epochs must be >= 0 and lr > 0, got {finetune_epochs}, {lr}")
        self.energy, self.max_mac_fraction = energy, max_mac_fraction
        self.finetune_epochs, self.lr, self.skip_output_layer = finetune_epochs, lr, skip_output_layer

    def applies(self, model: torch.nn.Module, ctx: PassContext) -> bool:
        return bool(_candidates(model))

    def run(self, model: torch.nn.Module, ctx: PassContext) -> PassResult:
        teacher, student = clone(model), clone(model)
        example = as_inputs(ctx.example_inputs)
        params_before, macs_before = count_params(student), count_macs(student, example)
        shapes, bn_scale = _io_shapes(student, example)
        order = [name for name in shapes]
        skip = {order[-1]} if self.skip_output_layer and order else set()
        replaced: list[str] = []
        ranks: dict[str, Any] = {}
        for name, mod in _candidates(student):
            if name not in shapes or name in skip:
                continue  # not run on the example inputs, or the output layer
            new, rank = _factorise(mod, shapes[name], self.energy, self.max_mac_fraction,
                                   bn_scale.get(name))
            if new is not None:
                _set_module(student, name, new)
                replaced.append(name)
                ranks[name] = rank
        train = train_student(student, teacher, ctx, epochs=self.finetune_epochs, lr=self.lr)
        notes = [f"factorised {len(replaced)} of {len(shapes)} Linear/Conv2d layers at energy {self.energy}"]
        if not replaced:
            notes.append("no layer got cheaper at this energy; the model is unchanged")
        params = {
            "energy": self.energy, "max_mac_fraction": self.max_mac_fraction,
            "layers_factorised": len(replaced), "ranks": ranks,
            "params_before": params_before, "params_after": count_params(student),
            "macs_before": macs_before, "macs_after": count_macs(student, example),
            "finetune_steps": train["steps"],
        }
        return PassResult(student.eval(), params=params, notes=notes)


def _candidates(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    torch = require("torch")
    out = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and min(m.in_features, m.out_features) > 1:
            out.append((name, m))
        elif (isinstance(m, torch.nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros"
              and min(m.in_channels, m.out_channels) > 1):
            out.append((name, m))
    return out


def _io_shapes(model: torch.nn.Module, example: tuple[Any, ...]
               ) -> tuple[dict[str, tuple[int, int]], dict[str, torch.Tensor]]:
    """Run `example` once and return, for every Linear/Conv2d that ran (in run order): name ->
    (input positions, output positions), and name -> per-channel scale of the eval-mode BatchNorm2d that
    directly consumes its output (|gamma| / sqrt(var + eps)), when there is one."""
    torch = require("torch")
    shapes: dict[str, tuple[int, int]] = {}
    produced: dict[int, str] = {}
    bn_scale: dict[str, Any] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            def hook(mod: Any, inp: Any, out: Any, name: str = name) -> None:
                if isinstance(mod, torch.nn.Conv2d):
                    shapes[name] = (inp[0].shape[-2] * inp[0].shape[-1], out.shape[-2] * out.shape[-1])
                    produced[id(out)] = name
                else:
                    shapes[name] = (1, 1)
            hooks.append(m.register_forward_hook(hook))
        elif isinstance(m, torch.nn.BatchNorm2d) and m.running_var is not None:
            def bn_hook(mod: Any, inp: Any) -> None:
                src = produced.get(id(inp[0]))
                if src is not None:
                    w = mod.weight.detach() if mod.weight is not None else torch.ones_like(mod.running_var)
                    bn_scale[src] = (w / (mod.running_var + mod.eps).sqrt()).abs().clamp(min=1e-8)
            hooks.append(m.register_forward_pre_hook(bn_hook))
    run_hooked(model, [example], hooks)
    return shapes, bn_scale


def _set_module(root: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def _factorise(mod: Any, hw: tuple[int, int], energy: float, max_frac: float,
               scale: torch.Tensor | None) -> tuple[torch.nn.Module | None, Any]:
    """Factorised replacement of `mod` (or None). `scale`: the following BN's per-channel gain; the
    energy is measured on the BN-scaled weight, because BN amplifies low-norm output channels."""
    torch = require("torch")
    if isinstance(mod, torch.nn.Linear):
        return _svd_linear(mod, energy, max_frac)
    s = (scale if scale is not None else torch.ones(mod.out_channels)).double()
    if mod.kernel_size == (1, 1) and mod.stride == (1, 1) and mod.padding in ((0, 0), "valid"):
        return _svd_conv1x1(mod, energy, max_frac, s)
    return _tucker2_conv(mod, hw, energy, max_frac, s)


def _svd_factors(w: torch.Tensor, energy: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    torch = require("torch")
    u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
    r = rank_for_energy(s, energy)
    root = s[:r].sqrt()
    return (u[:, :r] * root).float(), (root[:, None] * vh[:r]).float(), r


def _svd_linear(lin: torch.nn.Linear, energy: float, max_frac: float) -> tuple[Any, Any]:
    torch = require("torch")
    out_f, in_f = lin.weight.shape
    a, b, r = _svd_factors(lin.weight.data, energy)
    if r * (in_f + out_f) > max_frac * in_f * out_f:
        return None, None
    first = torch.nn.Linear(in_f, r, bias=False)
    second = torch.nn.Linear(r, out_f, bias=lin.bias is not None)
    first.weight.data.copy_(b)
    second.weight.data.copy_(a)
    if lin.bias is not None:
        second.bias.data.copy_(lin.bias.data)
    return torch.nn.Sequential(first, second), r


def _svd_conv1x1(conv: torch.nn.Conv2d, energy: float, max_frac: float,
                 scale: torch.Tensor) -> tuple[Any, Any]:
    torch = require("torch")
    o, i = conv.out_channels, conv.in_channels
    a, b, r = _svd_factors(conv.weight.data.double().reshape(o, i) * scale[:, None], energy)
    a = (a.double() / scale[:, None]).float()
    if r * (i + o) > max_frac * i * o:
        return None, None
    first = torch.nn.Conv2d(i, r, 1, bias=False)
    second = copy.deepcopy(conv)  # keeps any padding wrapper a Conv2d subclass carries
    second.in_channels = r
    second.weight = torch.nn.Parameter(a.reshape(o, r, 1, 1).contiguous())
    first.weight.data.copy_(b.reshape(r, i, 1, 1))
    return torch.nn.Sequential(first, second), r


def _tucker2_conv(conv: torch.nn.Conv2d, hw: tuple[int, int], energy: float, max_frac: float,
                  scale: torch.Tensor) -> tuple[Any, Any]:
    torch = require("torch")
    w = conv.weight.data.double() * scale[:, None, None, None]  # (O, I, kh, kw), BN gain applied
    o, i, kh, kw = w.shape
    u_out, s_out, _ = torch.linalg.svd(w.reshape(o, -1), full_matrices=False)
    u_in, s_in, _ = torch.linalg.svd(w.transpose(0, 1).reshape(i, -1), full_matrices=False)
    r_out, r_in = rank_for_energy(s_out, energy), rank_for_energy(s_in, energy)
    hw_in, hw_out = hw
    macs = o * i * kh * kw * hw_out
    new_macs = i * r_in * hw_in + r_in * r_out * kh * kw * hw_out + r_out * o * hw_out
    if new_macs > max_frac * macs:
        return None, None
    uo, ui = u_out[:, :r_out], u_in[:, :r_in]
    for _ in range(HOOI_SWEEPS):  # alternate: best U_out given U_in, then best U_in given U_out
        t = torch.einsum("oikl,ir->orkl", w, ui)
        uo = torch.linalg.svd(t.reshape(o, -1), full_matrices=False)[0][:, :r_out]
        t = torch.einsum("oikl,or->rikl", w, uo)
        ui = torch.linalg.svd(t.transpose(0, 1).reshape(i, -1), full_matrices=False)[0][:, :r_in]
    core = torch.einsum("oikl,or,is->rskl", w, uo, ui)  # (r_out, r_in, kh, kw)
    first = torch.nn.Conv2d(i, r_in, 1, bias=False)
    first.weight.data.copy_(ui.t().reshape(r_in, i, 1, 1).float())
    mid = copy.deepcopy(conv)  # same stride/padding/dilation (and padding wrapper, if a subclass)
    mid.in_channels, mid.out_channels, mid.bias = r_in, r_out, None
    mid.weight = torch.nn.Parameter(core.float().contiguous())
    last = torch.nn.Conv2d(r_out, o, 1, bias=conv.bias is not None)
    last.weight.data.copy_((uo / scale[:, None]).reshape(o, r_out, 1, 1).float())
    if conv.bias is not None:
        last.bias.data.copy_(conv.bias.data)
    return torch.nn.Sequential(first, mid, last), (r_in, r_out)
