"""tests/scenarios/torch_oversubscribed_short.py for the benchmark: feature extraction in 2 workers at 8
threads each (the author's workstation setting), a model at 8 threads in the main process, on 2 cores.
SYNTHETIC=1: the hand-written synthetic-data version."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "8")  # main threads (copied from the author's 8-core workstation)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _loop import epochs, run, synthetic  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

BATCH = 16


class Spectra(Dataset):
    def __len__(self) -> int:
        return 100_000

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng(i)
        sig = torch.from_numpy(rng.standard_normal((256, 256)).astype(np.float32))
        feats = torch.linalg.svdvals(sig @ sig.T)[:64]  # a covariance spectrum per sample
        return feats / feats[0], i % 4


def init_worker(_: int) -> None:
    torch.set_num_threads(8)  # worker threads


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(8)  # main threads
    model = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    if os.environ.get("SYNTHETIC"):
        batches = synthetic(torch.rand(BATCH, 64), torch.randint(0, 4, (BATCH,)))
    else:
        loader = DataLoader(Spectra(), batch_size=BATCH, num_workers=2, persistent_workers=True,
                            worker_init_fn=init_worker)
        batches = epochs(loader)
    run(batches, step)


if __name__ == "__main__":
    main()
