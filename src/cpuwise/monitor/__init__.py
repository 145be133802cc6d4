"""Collect: sample the process tree, the system and the GPU; time each step. Produces a Recording."""
