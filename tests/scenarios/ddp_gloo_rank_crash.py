"""Data-parallel training on 2 CPU ranks where rank 1 hits a corrupt record after a few dozen steps and
raises: torch.multiprocessing.spawn ends the other rank and the job fails."""

import sys

from ddp_gloo_input_bound import main

if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0, crash_rank=1)
