"""The code snippets the findings suggest, filled in with the numbers a rule computed."""

from __future__ import annotations


def cheaper_preprocessing(gpu: bool) -> str:
    """Reduced-scale decode and uint8 output, or cpuwise.data (and GPU decode when there is a GPU)."""
    gpu_part = (
        "\n# 3. Or decode on the GPU you already have (nvJPEG), keeping the CPU for reading files:\n"
        "#    cpuwise.data picks the CPU/GPU split itself when given device='cuda' (see its stats 'decode')."
        if gpu
        else ""
    )
    return (
        "# 1. Decode at reduced scale and hand uint8 to the device; normalise there, not in the worker:\n"
        "img = Image.open(path)\n"
        "img.draft('RGB', (2 * size, 2 * size))      # JPEG decodes at 1/2, 1/4 or 1/8 scale\n"
        "x = torch.from_numpy(np.asarray(img.convert('RGB').resize((size, size))))  # uint8 HWC\n"
        "# in the loop: x = x.cuda(non_blocking=True).permute(0, 3, 1, 2).float().div_(255)\n"
        "\n"
        "# 2. Or let cpuwise.data size the workers and use its fast decoder (OpenCV, uint8):\n"
        "import cpuwise.data as cd\n"
        "ds = cd.from_folder(root).shuffle(seed=0).map(cd.image.decode_crop(224)).batch(256).prefetch()\n"
        "loader = ds.to_torch(device='cuda', normalize=(mean, std))" + gpu_part
    )


def more_workers(n: int, cpuwise_data: bool) -> str:
    """`n` data workers, for a cpuwise.data pipeline or a DataLoader."""
    if cpuwise_data:
        return (
            f"ds = ds.map(fn, workers={n})          # or raise the budget and let autotune pick:\n"
            f"loader = ds.to_torch(device='cuda')   # cd.from_folder(...).map(fn, workers='auto')"
        )
    return (
        "loader = torch.utils.data.DataLoader(\n"
        f"    dataset, batch_size=batch_size, shuffle=True, num_workers={n},\n"
        "    persistent_workers=True, pin_memory=True, prefetch_factor=4,\n"
        ")"
    )


IO_BOUND = (
    "# Read once, keep the decoded/resized samples on fast local disk, and overlap the rest of the I/O:\n"
    "import cpuwise.data as cd\n"
    "ds = (cd.from_folder(root)\n"
    "      .map(cd.image.read_bytes(), workers=16, backend='thread')   # threads overlap blocking reads\n"
    "      .map(cd.image.decode_crop(224))\n"
    "      .cache('/local_ssd/cache')                                  # later epochs skip the slow storage\n"
    "      .batch(256).prefetch())\n"
    "# With a DataLoader: copy the data set to local SSD, or pack it into large shard files."
)


def thread_caps(main_threads: int) -> str:
    """One thread per worker process, `main_threads` in the main one."""
    return (
        "def worker_init_fn(worker_id):\n"
        "    import torch\n"
        "    from threadpoolctl import threadpool_limits\n"
        "    torch.set_num_threads(1)          # one thread per worker process\n"
        "    threadpool_limits(limits=1)       # numpy/OpenBLAS/MKL/OpenMP pools too\n"
        "\n"
        "loader = DataLoader(dataset, num_workers=num_workers, worker_init_fn=worker_init_fn)\n"
        f"torch.set_num_threads({main_threads})            # the main process: the usable cores\n"
        "# or for the whole job:  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python train.py"
    )


def bigger_batch(batch_size: int | None) -> str:
    """Twice the batch (with the learning rate scaled), cudnn.benchmark and torch.compile."""
    bs = f"{batch_size * 2}" if batch_size else "2 * batch_size"
    return (
        f"loader = DataLoader(dataset, batch_size={bs}, ...)   # fill the idle GPU memory\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=lr * 2)   # linear LR scaling with the batch\n"
        "torch.backends.cudnn.benchmark = True\n"
        "model = torch.compile(model)        # fewer, larger kernels; less launch overhead"
    )


SYNC_STALLS = (
    "# .item(), .cpu(), print(tensor) and float(loss) wait for the GPU every step. Accumulate on the device\n"
    "# and read back rarely:\n"
    "running = torch.zeros((), device='cuda')\n"
    "for step, (x, y) in enumerate(loader):\n"
    "    loss = train_step(x, y)\n"
    "    running += loss.detach()                 # no host-device sync\n"
    "    if step % 100 == 99:\n"
    "        print(f'loss {(running / 100).item():.4f}')   # one sync per 100 steps\n"
    "        running.zero_()"
)

COPY_ON_READ = (
    "# Python lists/dicts of objects in a Dataset are copied page by page into every forked worker as\n"
    "# their reference counts are touched (copy-on-read). Keep the index in numpy arrays instead:\n"
    "class MyDataset(torch.utils.data.Dataset):\n"
    "    def __init__(self, paths, labels):\n"
    "        self.paths = np.array(paths, dtype=np.bytes_)     # one buffer, no per-item objects\n"
    "        self.labels = np.asarray(labels, dtype=np.int64)\n"
    "\n"
    "    def __getitem__(self, i):\n"
    "        return load(self.paths[i].decode()), self.labels[i]"
)

SWAP = (
    "# Fewer batches in flight and fewer worker copies; cap the pipeline's RAM:\n"
    "loader = DataLoader(dataset, num_workers=2, prefetch_factor=2, ...)\n"
    "# with cpuwise.data:  ds.prefetch(...).to_torch(...) under cd's ram_budget_bytes (see stats 'config')"
)

HUNG_OPENMP = (
    "# The parent created an OpenMP/BLAS thread pool, then fork()ed DataLoader workers: GNU libgomp is\n"
    "# not fork-safe, and the child waits forever for threads that do not exist in it. Start workers\n"
    "# without fork, or keep the parent free of OpenMP work before the workers start:\n"
    "loader = DataLoader(dataset, num_workers=2, multiprocessing_context='forkserver')  # or 'spawn'\n"
    "# or, at the top of the script:\n"
    "import torch.multiprocessing as mp\n"
    "mp.set_start_method('forkserver', force=True)"
)

HUNG_GENERIC = (
    "# Look at the stacks above for the frame every process waits in. To get stacks yourself next time:\n"
    "import faulthandler, signal\n"
    "faulthandler.register(signal.SIGUSR1, all_threads=True)   # then: kill -USR1 <pid>\n"
    "# and give DataLoader a timeout so a stuck worker raises instead of hanging:\n"
    "loader = DataLoader(dataset, num_workers=2, timeout=120)"
)

TINY_STEPS = (
    "# Steps of a few ms: the per-batch hand-off from worker processes costs as much as the step.\n"
    "loader = DataLoader(dataset, batch_size=4 * batch_size, num_workers=2, persistent_workers=True,\n"
    "                    pin_memory=True, prefetch_factor=4)\n"
    "# or, for tensors already in memory, skip the workers altogether:\n"
    "perm = torch.randperm(len(x_all))\n"
    "for i in range(0, len(perm), batch_size):\n"
    "    idx = perm[i : i + batch_size]\n"
    "    x, y = x_all[idx].cuda(non_blocking=True), y_all[idx].cuda(non_blocking=True)"
)
