"""Collect: sample the process tree, the system and the GPU; time each step. Produces a Recording.

    recording   the plain data model (the contract with cpuwise.diagnose / cpuwise.report)
    runner      run_job(argv): start a command instrumented, record it, end it cleanly
    recorder    Recorder: drives the samplers in a thread, reads the job's channel, fills a Recording
    backends    the sampler interfaces; procfs / proctree (Linux /proc, psutil), nvml (NVML + GPM),
                fake (scripted backends and a fake pynvml for tests)
    channel     the cheap job -> doctor channel (note_next, emit) used by cpuwise.data and the hooks
    instrument  the sitecustomize bootstrap: DataLoader steps, thread pools, sync timing, stack dumps
    steps       `next` records -> StepRecords (data-wait / compute / sync)
    stacks      py-spy / faulthandler stack dumps of a hung job
    watch       cpuwise.watch(): explicit step timing, under the doctor or standalone
"""
