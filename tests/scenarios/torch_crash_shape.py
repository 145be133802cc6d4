"""A training job that crashes after a few steps: one batch arrives with an unexpected shape."""

import sys

import torch
from torch.utils.data import DataLoader, Dataset


class Mixed(Dataset):
    def __len__(self) -> int:
        return 512

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        width = 33 if i == 300 else 32  # one corrupt record
        return torch.randn(width), i % 2


def main() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(32, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in DataLoader(Mixed(), batch_size=16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


if __name__ == "__main__":
    main()
    sys.exit(0)
