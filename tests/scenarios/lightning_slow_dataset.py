"""PyTorch Lightning: a LightningModule and a DataModule whose images are decoded and augmented in
__getitem__; the DataModule keeps Lightning's default of no worker processes."""

import sys

import numpy as np
import pytorch_lightning as pl
import torch
from _data import decode_crop, jpegs
from torch.utils.data import DataLoader, Dataset


class Photos(Dataset):
    def __init__(self, files: list[bytes]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files) * 16

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = decode_crop(self.files[i % len(self.files)], np.random.default_rng(i))
        return torch.from_numpy(x), i % 10


class PhotoData(pl.LightningDataModule):
    def __init__(self, batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size, self.num_workers = batch_size, num_workers

    def setup(self, stage: str | None = None) -> None:
        self.train = Photos(jpegs(32))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)


class SmallCNN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                       torch.nn.Linear(16, 10))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main(seconds: float) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=100, max_time={"seconds": seconds},
                         enable_progress_bar=False)
    trainer.fit(SmallCNN(), datamodule=PhotoData())


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
