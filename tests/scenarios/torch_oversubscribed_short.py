"""Feature extraction in the workers with numpy/torch math at default-sized thread pools (8 threads
each, as on the author's workstation), a multi-threaded model in the main process; a short job."""

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "8")  # copied from the author's 8-core workstation setup

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402


class Spectra(Dataset):
    def __len__(self) -> int:
        return 100_000

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng(i)
        sig = torch.from_numpy(rng.standard_normal((256, 256)).astype(np.float32))
        feats = torch.linalg.svdvals(sig @ sig.T)[:64]  # a covariance spectrum per sample
        return feats / feats[0], i % 4


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(8)
    loader = DataLoader(Spectra(), batch_size=16, num_workers=2, persistent_workers=True,
                        worker_init_fn=lambda _: torch.set_num_threads(8))
    model = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 4))
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
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 6.0)
