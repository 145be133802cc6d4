"""The sentence-transformers peers, served over a pipe to benchmarks/optimize.py (runs in the peers venv).

Each peer is what a user gets in a few lines of sentence-transformers:

- st_torch:          SentenceTransformer(path)
- st_onnx:           SentenceTransformer(path, backend="onnx")
- st_onnx_qint8:     export_dynamic_quantized_onnx_model(model, "<avx512_vnni|avx2>", path) + backend="onnx"
- st_openvino:       SentenceTransformer(path, backend="openvino")
- st_openvino_int8:  ST's export_static_quantized_openvino_model recipe (OVQuantizer, NNCF, 300 samples padded
                     to 384 tokens), calibrated on local texts, not the glue/sst2 download it defaults to

Protocol: one JSON object per line on stdin; one JSON reply per line on the real stdout (everything the
libraries print goes to stderr). Commands:
  {"cmd": "setup", "model_dir": ..., "work": ..., "calibration": [texts], "isa": "avx512_vnni"|"avx2"}
  {"cmd": "texts", "name": ..., "texts": [...]}
  {"cmd": "encode", "peer": ..., "texts": name, "batch_size": n, "save": path|null} -> {"seconds": s}
  {"cmd": "quit"}
A peer that cannot be built replies {"error": ...} for every command that uses it, and the benchmark
records why.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # library chatter goes to stderr; replies go to OUT
PEERS = ("st_torch", "st_onnx", "st_onnx_qint8", "st_openvino", "st_openvino_int8")


def reply(obj: dict[str, Any]) -> None:
    OUT.write(json.dumps(obj) + "\n")
    OUT.flush()


def build(peer: str, src: Path, work: Path, calibration: list[str], isa: str) -> Any:
    from sentence_transformers import SentenceTransformer

    folder = work / peer
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(src, folder)  # exports are written next to the model: never into site-packages
    if peer == "st_torch":
        return SentenceTransformer(str(folder), device="cpu")
    if peer == "st_onnx":
        return SentenceTransformer(str(folder), device="cpu", backend="onnx")
    if peer == "st_onnx_qint8":
        from sentence_transformers import export_dynamic_quantized_onnx_model

        m = SentenceTransformer(str(folder), device="cpu", backend="onnx")
        export_dynamic_quantized_onnx_model(m, isa, str(folder))
        return SentenceTransformer(
            str(folder),
            device="cpu",
            backend="onnx",
            model_kwargs={"file_name": f"onnx/model_qint8_{isa}.onnx"},
        )
    if peer == "st_openvino":
        return SentenceTransformer(str(folder), device="cpu", backend="openvino")
    if peer == "st_openvino_int8":
        return static_int8_openvino(folder, calibration)
    raise ValueError(f"unknown peer {peer!r}")


def static_int8_openvino(folder: Path, calibration: list[str]) -> Any:
    """ST's export_static_quantized_openvino_model, step for step, with a local calibration dataset."""
    import datasets
    from optimum.intel.openvino import OVConfig, OVQuantizationConfig, OVQuantizer
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import quantize as stq

    model = SentenceTransformer(str(folder), device="cpu", backend="openvino")
    config = OVQuantizationConfig(num_samples=300)
    quantizer = OVQuantizer.from_pretrained(model.transformers_model)
    texts = (calibration * (300 // max(1, len(calibration)) + 1))[:300]
    tokens = model.tokenizer(texts, padding="max_length", max_length=384, truncation=True)
    dataset = datasets.Dataset.from_dict(dict(tokens))
    stq.save_or_push_to_hub_model(
        export_function=lambda save_dir: quantizer.quantize(
            dataset, save_directory=save_dir, ov_config=OVConfig(quantization_config=config)
        ),
        export_function_name="export_static_quantized_openvino_model",
        config=config,
        model_name_or_path=str(folder),
        push_to_hub=False,
        create_pr=False,
        file_suffix="qint8_quantized",
        backend="openvino",
        model=model,
    )
    return SentenceTransformer(
        str(folder),
        device="cpu",
        backend="openvino",
        model_kwargs={"file_name": "openvino/openvino_model_qint8_quantized.xml"},
    )


def main() -> None:
    import numpy as np

    models: dict[str, Any] = {}
    errors: dict[str, str] = {}
    texts: dict[str, list[str]] = {}
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.get("cmd")
        try:
            if cmd == "setup":
                for peer in msg.get("peers", PEERS):
                    t0 = time.perf_counter()
                    try:
                        models[peer] = build(
                            peer, Path(msg["model_dir"]), Path(msg["work"]), msg["calibration"], msg["isa"]
                        )
                        models[peer].encode(["warm up"], batch_size=1)
                    except Exception as exc:  # noqa: BLE001 - a peer that cannot run is recorded, not fatal
                        traceback.print_exc()
                        errors[peer] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    print(f"peer {peer}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
                import sentence_transformers
                import torch
                import transformers

                reply(
                    {
                        "ok": list(models),
                        "errors": errors,
                        "versions": {
                            "sentence_transformers": sentence_transformers.__version__,
                            "torch": torch.__version__,
                            "transformers": transformers.__version__,
                        },
                    }
                )
            elif cmd == "texts":
                texts[msg["name"]] = msg["texts"]
                reply({"ok": len(msg["texts"])})
            elif cmd == "encode":
                peer = msg["peer"]
                if peer not in models:
                    reply({"error": errors.get(peer, "not set up")})
                    continue
                t0 = time.perf_counter()
                emb = models[peer].encode(texts[msg["texts"]], batch_size=msg["batch_size"])
                seconds = time.perf_counter() - t0
                if msg.get("save"):
                    np.save(msg["save"], np.asarray(emb, dtype=np.float32))
                reply({"seconds": seconds})
            elif cmd == "quit":
                reply({"ok": True})
                return
            else:
                reply({"error": f"unknown command {cmd!r}"})
        except Exception as exc:  # noqa: BLE001 - report and keep serving
            traceback.print_exc()
            reply({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
