"""Check the doctor's GPU side on a real NVIDIA GPU: NVML sampling, GPM SM metrics, sync timing.

    python benchmarks/gpu_smoke_doctor.py            # ~30 s on an H100
    python benchmarks/gpu_smoke_doctor.py --quick

1. Opens NVML as the doctor does and prints what it found (devices, which SM metric: GPM on Hopper).
2. Samples the GPU 20 times while this process runs matmuls on it; prints the samples.
3. Runs the doctor on a small CUDA training job that calls loss.item() every step (a sync) and
   prints the GPU samples, the step split (data-wait / compute / sync) and the verdict.
Writes benchmarks/results/gpu_smoke_doctor.json. Without a GPU it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "gpu_smoke_doctor.json"

JOB = r'''
import sys, time, torch
from torch.utils.data import DataLoader, TensorDataset
seconds = float(sys.argv[1])
dev = "cuda"
model = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 10)).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
data = TensorDataset(torch.randn(4096, 1024), torch.randint(0, 10, (4096,)))
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    for x, y in DataLoader(data, batch_size=256, shuffle=True, num_workers=2, pin_memory=True):
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        loss.item()  # a host-device sync every step
        if time.perf_counter() > end:
            break
'''


def mean(vals: list[float | None]) -> float | None:
    v = [x for x in vals if x is not None]
    return statistics.fmean(v) if v else None


def sample_under_load(n: int) -> list[dict[str, object]]:
    import torch

    from cpuwise.monitor.nvml import NvmlBackend

    stop = threading.Event()

    def load() -> None:
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        while not stop.is_set():
            a = (a @ a).clamp_(-1, 1)
            torch.cuda.synchronize()

    th = threading.Thread(target=load, daemon=True)
    th.start()
    b = NvmlBackend()
    out = []
    try:
        for i in range(n):
            time.sleep(0.1)
            out.extend(asdict(s) for s in b.sample(0.1 * (i + 1), []))
    finally:
        stop.set()
        th.join()
        b.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from cpuwise.diagnose import diagnose
    from cpuwise.diagnose.metrics import measure
    from cpuwise.monitor.nvml import NvmlBackend
    from cpuwise.monitor.runner import run_job

    probe = NvmlBackend()
    status = asdict(probe.status)
    probe.close()
    print("NVML status:", json.dumps(status))
    result: dict[str, object] = {"benchmark": "gpu_smoke_doctor", "nvml_status": status}
    if not status["available"]:
        print("No GPU metrics here; nothing more to check.")
        return 0
    samples = sample_under_load(10 if args.quick else 20)
    for s in samples:
        print({k: s[k] for k in ("index", "util_percent", "sm_activity_percent", "sm_occupancy_percent",
                                 "power_w", "sm_clock_mhz", "mem_used_bytes", "process_mem_bytes")})
    result["samples_under_matmul"] = samples
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "cuda_job.py"
        script.write_text(JOB)
        rec = run_job([sys.executable, str(script), "3" if args.quick else "8"], interval=0.1)
    split = measure(rec).steps  # every step, warm-up excluded
    doctor = {
        "end_reason": rec.end_reason, "exit_code": rec.exit_code, "gpu_status": asdict(rec.gpu),
        "gpu_samples": len(rec.gpus), "steps": sum(lane.n for lane in rec.step_lanes),
        "mean_util_percent": mean([g.util_percent for g in rec.gpus]),
        "mean_sm_activity_percent": mean([g.sm_activity_percent for g in rec.gpus]),
        "mean_sm_occupancy_percent": mean([g.sm_occupancy_percent for g in rec.gpus]),
        "step_share": {"data_wait": split.wait_share if split else 0.0,
                       "compute": split.compute_share if split else 0.0,
                       "sync": split.sync_share if split else 0.0},
        "job_process_mem_seen": sorted({pid for g in rec.gpus for pid in g.process_mem_bytes}),
        "findings": [f.id for f in diagnose(rec)],
    }
    print("doctor on a CUDA job:", json.dumps(doctor, indent=1))
    result["doctor_on_cuda_job"] = doctor
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
