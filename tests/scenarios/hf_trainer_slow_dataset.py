"""Hugging Face Trainer: a small BERT classifier (built from a config) on docstring sentences, with
on-the-fly text augmentation and tokenisation in the Dataset's __getitem__."""

import random
import sys
import time

import torch
from _data import sentences
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from torch.utils.data import Dataset
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

MAX_LEN = 48


def train_tokenizer(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=2000, special_tokens=["[PAD]", "[UNK]"])
    tok.train_from_iterator(texts, trainer)
    return tok


class AugmentedText(Dataset):
    """Each access makes a new noisy variant of the sentence (word dropout, swaps, character noise)."""

    def __init__(self, texts: list[str], tok: Tokenizer) -> None:
        self.texts, self.tok = texts, tok

    def __len__(self) -> int:
        return len(self.texts)

    def augment(self, text: str, rng: random.Random) -> str:
        words = text.split()
        for _ in range(40):  # many light edits, like nlpaug-style pipelines
            if len(words) > 3 and rng.random() < 0.3:
                del words[rng.randrange(len(words))]
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
            k = rng.randrange(len(words))
            w = words[k]
            if len(w) > 3:
                c = rng.randrange(len(w) - 1)
                words[k] = w[:c] + w[c + 1] + w[c] + w[c + 2 :]
        return " ".join(words)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = random.Random(i * 7919 + int(time.time()))
        variants = [self.augment(self.texts[i], rng) for _ in range(6)]
        ids = self.tok.encode(variants[0]).ids[:MAX_LEN]
        ids += [0] * (MAX_LEN - len(ids))
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor([int(t != 0) for t in ids]),
                "labels": torch.tensor(len(variants[-1]) % 2)}


class StopAfter(TrainerCallback):
    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        control.should_training_stop = time.perf_counter() > self.end
        return control


def main(seconds: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    texts = sentences(1200)
    tok = train_tokenizer(texts)
    config = BertConfig(vocab_size=2000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64, num_labels=2)
    args = TrainingArguments(output_dir="hf-out", per_device_train_batch_size=32, num_train_epochs=50,
                             logging_steps=20, save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=BertForSequenceClassification(config), args=args,
                      train_dataset=AugmentedText(texts, tok), callbacks=[StopAfter(seconds)])
    trainer.train()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
