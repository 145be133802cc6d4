import cProfile, pstats, subprocess, sys, time
sys.path.insert(0, "benchmarks")
from doctor_overhead import TREE_JOB
from cpuwise.monitor.backends import NoGpu
from cpuwise.monitor.procfs import ProcSystemBackend, process_backend
from cpuwise.monitor.recorder import Recorder
from cpuwise.monitor.uss import UssBudget
job = subprocess.Popen([sys.executable, "-c", TREE_JOB, "10", "60"], stderr=subprocess.DEVNULL)
try:
    b = process_backend(job.pid)
    while len(b.sample(0.0, {})) < 10: time.sleep(0.5)
    time.sleep(3)
    b = process_backend(job.pid)
    b.uss = UssBudget(fraction=0.0, credit_s=0.0)  # no private reads: the regular tick only
    rec = Recorder(b, ProcSystemBackend(), NoGpu("x"), interval=0.1)
    for _ in range(5): rec.tick()
    c0 = time.thread_time(); n = 200
    pr = cProfile.Profile(); pr.enable()
    for _ in range(n): rec.tick()
    pr.disable()
    print("ms per tick", (time.thread_time() - c0) / n * 1e3)
    pstats.Stats(pr).sort_stats("tottime").print_stats(12)
finally:
    job.kill(); job.wait()
