"""Every number the doctor's rules compare against, in one place, each with where it comes from.

"cpuwise choice" marks a number that is ours, not a published one; the comment gives the reasoning so
it can be argued with. The rules read these names at call time, so a test or a user can patch one.
"""

from __future__ import annotations

# --- Input-bound bands --------------------------------------------------------------------------------
# TensorFlow Profiler's input-pipeline analyser: "input-bound" is the share of step time the host spent
# waiting for input. < 5 % is fine, 5-20 % moderately input-bound, >= 20 % highly input-bound.
# (tensorflow.org/guide/profiler, "Input pipeline analyzer"; tensorboard_plugin_profile input_pipeline)
INPUT_BOUND_MODERATE = 0.05
INPUT_BOUND_HIGH = 0.20

# --- Enough data to judge --------------------------------------------------------------------------
# cpuwise choice: the first steps include worker start-up, the first prefetch fill, cuDNN autotuning and
# lazy allocation; TF Profiler and PyTorch's profiler schedule (`wait`/`warmup`) likewise skip them.
WARMUP_STEPS = 2
# cpuwise choice: fewer than 5 measured steps (or 3 system samples) is not a trend; a share computed from
# them swings by tens of percent with one slow step.
MIN_STEPS = 5
MIN_SYSTEM_SAMPLES = 3

# cpuwise choice: a sample closer than a quarter interval to the previous one (the sampler fell behind
# and caught up) has a CPU ratio over a few ms of jiffies: 0 % or thousands of percent. Dropped.
MIN_SAMPLE_GAP = 0.25

# --- CPU saturation --------------------------------------------------------------------------------
# cpuwise choice: >= 85 % of the usable cores busy counts as "all cores busy". Sampled CPU % reads a few
# percent under 100 even when every core is runnable (sampling jitter, the doctor's own sampler, kernel
# time outside the job), so 85 % leaves that margin while still meaning "no core to spare".
CPU_SATURATED = 0.85
# cpuwise choice: other processes using a quarter of the usable cores is worth naming in the evidence:
# the job could have had that CPU on a machine of its own.
OTHERS_SHARE = 0.25
# cpuwise choice: a DataLoader worker above 70 % of a core is busy computing (decode/augment) rather than
# waiting on I/O; below it, the worker spends much of its time blocked.
WORKER_BUSY = 0.70
# cpuwise choice: at least half a core idle on average is "a free core" worth another worker.
MIN_FREE_CORES = 0.5

# cpuwise choice: below 10 ms per step, a DataLoader's fixed per-batch cost (~0.1-1 ms of pickling and
# queue hand-off, plus worker start-up every epoch without persistent_workers) is a large share.
TINY_STEP_S = 0.010

# --- I/O-bound -------------------------------------------------------------------------------------
# cpuwise choice: CPU below 50 % of the usable cores while the step waits for data means the producers
# are blocked, not computing.
IO_CPU_IDLE = 0.50
# cpuwise choice: 10 % iowait is where `iostat`/`top` users start to look at the disk; a CPU-bound
# pipeline sits near 0 %.
IOWAIT_HIGH = 10.0  # percent
# cpuwise choice: a quarter of worker samples in uninterruptible disk sleep ("disk-sleep", state D).
DISK_SLEEP_SHARE = 0.25
# cpuwise choice: 50 MB/s sustained reads by the job is more than a local JPEG pipeline on a few cores
# decodes (~300 img/s/core x ~100 KB), so reads at this rate point at storage/network as the limit.
READ_RATE_HIGH = 50e6  # bytes per second
# cpuwise choice: data workers that use under 35 % of a core each and sleep (state S) in at least half of
# their samples while the loop waits for data are waiting on something other than the CPU: a remote read
# (object store, NFS, HTTP: none of it shows as iowait or disk sleep), a lock, a rate limit. A CPU-bound
# worker is runnable (R) even when other processes take its core.
IO_WORKER_CPU = 0.35
IO_SLEEP_SHARE = 0.50
# cpuwise choice: ... and the loop must wait at least 10 ms per step: below that the wait is of the order
# of the loader's own hand-off and of the consumer being scheduled (workers blocked on a full queue sleep
# too), so idle workers prove nothing about slow reads.
IO_MIN_WAIT_S = 0.010
# cpuwise choice: a bound on the workers suggested for waiting reads (each is a process with its own
# memory; past a few dozen, threads or asynchronous reads are the better fix).
IO_MAX_WORKERS = 64

# --- Thread oversubscription -----------------------------------------------------------------------
# cpuwise choice: a run queue at twice the usable cores means every core has a thread waiting behind the
# running one all the time (Brendan Gregg's "load > cores means saturation"; twice is a clear margin on
# a shared machine where other tenants add to the queue).
RUNQUEUE_RATIO = 2.0
# cpuwise choice: involuntary context switches per usable core per second. A core that always has another
# runnable thread waiting preempts once per slice (EEVDF base slice 3 ms, CFS latency 6-24 ms), i.e.
# ~40-330 times a second; spinning OpenMP/BLAS threads sit at the top of that range, a healthy job far
# below it (its threads block voluntarily).
INVOLUNTARY_CS_PER_CORE_S = 150.0
# cpuwise choice: the data workers' thread pools together above 2x the usable cores is a misconfiguration
# whether or not this run exercised them (8 workers x 16 OpenBLAS threads on 16 cores); equal to the
# cores (numpy's default pool in each of 2 workers on 2 cores) is left as "info" since decode code
# rarely calls BLAS. A single pool above the usable cores (torch reading the host's 64 cores inside a
# 2-core cgroup) always counts.
POOL_WORKERS_RATIO = 2.0
# cpuwise choice: the job itself must be using most of the machine for run-queue evidence to be its own.
OVERSUB_JOB_CPU = 0.80

# --- GPU -------------------------------------------------------------------------------------------
# cpuwise choice: below 50 % utilisation (or SM activity) the GPU idles half the time; NVIDIA's own
# guidance treats sustained low utilisation as "the GPU is waiting on something".
GPU_UTIL_LOW = 50.0  # percent
# cpuwise choice: less than half the GPU memory in use leaves room for a batch at least ~1.5-2x larger
# (activations scale with the batch; weights and optimizer state do not).
GPU_MEM_HEADROOM = 0.50
# cpuwise choice: 10 % of step time blocked on the device (.item(), .cpu(), synchronize) is a stall worth
# removing; a well-written loop syncs once per logging interval, far below that.
SYNC_SHARE_HIGH = 0.10

# --- Memory ----------------------------------------------------------------------------------------
# cpuwise choice: a worker whose private memory (USS; else RSS) grows by >= 20 MiB/min, by >= 25 % and by
# >= 64 MiB over at least 4 s, after its first MEM_WARMUP_S, is copying pages it only reads (copy-on-read
# of Python objects after fork: pytorch/pytorch#13246). Normal workers plateau after their first batches
# (imports and the first prefetch are a step up in the first seconds, not growth). Private memory is read
# only every few seconds (it is expensive), so two readings that far apart are a series; RSS needs three.
MEM_GROWTH_BYTES_PER_MIN = 20 * 2**20
MEM_GROWTH_RELATIVE = 0.25
MEM_GROWTH_MIN_BYTES = 64 * 2**20
MEM_GROWTH_MIN_DURATION_S = 4.0
# cpuwise choice: growth is high severity when several workers grow, or when the growth alone would fill
# a typical training node's free memory (tens of GiB) within the hour: 512 MiB/min is 30 GiB an hour.
MEM_GROWTH_HIGH_BYTES_PER_MIN = 512 * 2**20
MEM_WARMUP_S = 2.0
# cpuwise choice: swap growing by >= 64 MiB during the job means the job pushes pages out (a slowdown
# of orders of magnitude on every touch of them); a constant swap level left by others is not the job's.
SWAP_GROWTH_BYTES = 64 * 2**20
# cpuwise choice: RAM above 90 % used is "near the edge" for the evidence line of the swap finding.
MEM_USED_HIGH = 0.90

# --- Hangs -----------------------------------------------------------------------------------------
# Markers in stack dumps that point at the classic "OpenMP pool created in the parent, then fork()" hang:
# GNU libgomp is not fork-safe (GCC bug 52303; pytorch/pytorch#17199), its worker threads do not exist
# in the child, which then waits forever on a barrier/futex.
OPENMP_STACK_MARKERS = ("gomp", "libgomp", "omp_", "kmp_", "libiomp", "openmp", "blas_thread")

# --- Competing processes -----------------------------------------------------------------------------
# cpuwise choice: the job competes for CPU when the machine is saturated (CPU_SATURATED) while processes
# outside the job use at least OTHERS_SHARE of the usable cores, and the job itself wants CPU (at least
# half a core, or its processes are runnable in at least half of their samples: a starved job gets little
# CPU but stays runnable; a job that sleeps on reads loses nothing to a neighbour).
CONTENTION_JOB_CPU = 0.5
CONTENTION_RUNNABLE = 0.5

# --- Worker start-up every epoch ------------------------------------------------------------------
# cpuwise choice: fresh workers at each epoch (persistent_workers=False) are worth a finding when their
# start-up wait is at least TF Profiler's moderate input-bound band (5 % of step time) over at least 2
# restarts; at 20 % it is the main cost (high).
STARTUP_MIN_RESTARTS = 2

# --- Stragglers ----------------------------------------------------------------------------------------
# cpuwise choice: ranks step together (every step ends in a collective), so a rank that waits for data a
# high share of its step (TF Profiler's 20 %) more than the fastest rank makes the others wait for it.
# Ranks whose step counts differ by more than 10 % are not in lock-step (the comparison does not hold).
STRAGGLER_WAIT_GAP = 0.20
STRAGGLER_STEP_SPREAD = 0.10
