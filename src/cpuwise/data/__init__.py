"""cpuwise.data: an input pipeline that autotunes its parallelism within a CPU and RAM budget."""
