"""Variable-length sequences: samples are cheap token lists, the collate_fn pads, masks and builds
n-gram hash features for the whole batch; no worker processes."""

import sys
import time

import numpy as np
import torch
from _data import sentences
from torch.utils.data import DataLoader, Dataset


class Tokens(Dataset):
    def __init__(self, texts: list[str]) -> None:
        self.ids = [np.frombuffer(t.encode(), dtype=np.uint8).astype(np.int64) for t in texts]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.ids[i], i % 2


def collate(batch: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    feats = np.zeros((len(batch), 4096), dtype=np.float32)
    for row, (ids, _) in enumerate(batch):
        padded = np.zeros(width, dtype=np.int64)
        padded[: len(ids)] = ids
        for n in (2, 3, 4, 5):  # hashed character n-grams, counted per row
            for k in range(len(ids) - n + 1):
                feats[row, hash(tuple(ids[k : k + n].tolist())) % 4096] += 1.0
    return torch.from_numpy(feats), torch.tensor([label for _, label in batch])


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    loader = DataLoader(Tokens(sentences(2000)), batch_size=64, shuffle=True, collate_fn=collate)
    model = torch.nn.Sequential(torch.nn.Linear(4096, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if time.perf_counter() > end:
                break


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
