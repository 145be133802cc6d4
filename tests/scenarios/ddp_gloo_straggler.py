"""Data-parallel training on 2 CPU ranks where rank 1's shard is far more expensive to load
(it holds the high-resolution scans): the ranks step together, so rank 0 waits for rank 1."""

import sys

from ddp_gloo_input_bound import main

if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0, slow_rank=1)
