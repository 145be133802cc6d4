"""Click-log model: the Dataset keeps millions of records as Python tuples; forked persistent
workers read windows of them (every read touches reference counts, and the GC walks them)."""

import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset

N_RECORDS = 2_500_000
WINDOW = 32


class ClickLog(Dataset):
    def __init__(self) -> None:
        self.records = [(f"user{i % 99991}", i % 1000, float(i % 97)) for i in range(N_RECORDS)]

    def __len__(self) -> int:
        return N_RECORDS - WINDOW

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rows = self.records[i : i + WINDOW]
        feats = [sum(r[2] for r in rows) / WINDOW, float(len({r[0] for r in rows})), rows[0][1] / 1000.0]
        return torch.tensor(feats), rows[-1][1] % 2


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    loader = DataLoader(ClickLog(), batch_size=256, shuffle=True, num_workers=2, persistent_workers=True,
                        multiprocessing_context="fork")
    nn = torch.nn
    model = nn.Sequential(nn.Linear(3, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    end = time.perf_counter() + seconds
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if time.perf_counter() > end:
            break


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 14.0)
