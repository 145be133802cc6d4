"""The runtime: what turns a Dataset's specs into a running pipeline and keeps it tuned.

    build.py      the generic build loop: specs -> live stages (no knowledge of any stage kind)
    iterator.py   PipelineIterator: runs the stages, times the consumer, autotunes, reports
    autotune.py   the pure decision: measured stats -> worker counts and prefetch depth
    budget.py     the CPU and RAM a pipeline may use, and the argument checks that set them
    stats.py      ds.stats() as the typed cpuwise._schema.PipelineStats
    shared.py     the live pools and cache records, owned here and shared per spec (specs hold none)
"""
