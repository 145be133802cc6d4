"""The engine under map(): worker pools that run chunks of samples, and how results travel back.

    pool.py         the Pool protocol every pool follows, and the bookkeeping they share
    threads.py      ThreadPool (GIL-releasing work) and InlinePool (cheap functions, no workers)
    processes.py    ProcessPool: forkserver workers, killed-worker recovery, crash blame
    worker_main.py  the loop a worker process runs (preloaded by the forkserver: keep it light)
    chunk.py        run one chunk through a fused group of map functions (in a worker or a thread)
    shm.py          arrays through shared memory instead of pickles
    backends.py     which pool a map group gets (processes when its functions pickle, else threads)

The engine knows nothing of stages or Datasets: the map stage submits chunks and puts results back
in order; a pool may finish tasks in any order, be resized, or lose a worker.
"""
