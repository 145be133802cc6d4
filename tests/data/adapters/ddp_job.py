"""One rank of a small DDP-style job (gloo, CPU) for test_adapter_torch_distributed: no sampler anywhere.

    python ddp_job.py OUT_DIR   (with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set)

Writes OUT_DIR/rank<r>.json: the sample ids each of its loaders delivered per epoch, and the steps.
Every step does an all_reduce, so a rank that ran short would hang the others (the test's timeout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import cpuwise.data as cd
from cpuwise.data.adapters.torch import DataLoader


class Squares(torch.utils.data.Dataset):  # type: ignore[misc]
    def __len__(self) -> int:
        return 23

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return torch.full((2,), float(i)), i


def keep(x: int) -> bool:
    return x % 5 != 0  # drops differ between ranks: equal steps must still hold


def main() -> int:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    result: dict[str, list[list[int]]] = {"loader": [], "to_torch": [], "filtered": []}
    loader = DataLoader(Squares(), batch_size=4, shuffle=True, num_workers=0, seed=3)
    pipeline = cd.from_sequence(list(range(23))).shuffle(seed=3).batch(4).to_torch()
    filtered = cd.from_sequence(list(range(23))).shuffle(seed=3).filter(keep).batch(4).to_torch()
    for epoch in range(2):
        loader.set_epoch(epoch)
        for name, batches in (("loader", loader), ("to_torch", pipeline), ("filtered", filtered)):
            ids: list[int] = []
            for batch in batches:
                ids += [int(v) for v in (batch[1] if name == "loader" else batch)]
                dist.all_reduce(torch.ones(1))  # a collective per step
            result[name].append(ids)
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, **result}))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
