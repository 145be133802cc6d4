"""Collect: sample the job's process tree, the machine and the GPU, and read what the job reports.

Collectors only: this package fills a `cpuwise._schema.Recording` and never imports the rules
(`cpuwise.diagnose`) or the renderers (`cpuwise.report`).

    runner      run_job(argv): start a command instrumented, record it, end it cleanly
    recorder    Recorder: drives the samplers in a thread, reads the job's channel, fills a Recording
    backends    the sampler interfaces (ProcessBackend, SystemBackend, GpuBackend) and NoGpu
    procfs      the Linux samplers (plain /proc reads, via proctree); psutil_tree elsewhere
    roles       main / worker / child for each process of the tree
    uss         USS readings within a CPU budget (copy-on-read growth in workers)
    nvml        NVML + GPM GPU sampling
    fake        scripted fake backends and a fake `pynvml`, for tests
    events      the doctor's side of the channel: ChannelReader, JobState
    steps       `next` records -> StepRecords (data-wait / compute / sync)
    stacks      py-spy / faulthandler stack dumps of a hung job
    instrument  the job's side: the sitecustomize bootstrap, DataLoader / thread-pool / sync hooks
"""
