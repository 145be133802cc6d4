"""`cpuwise demo`: a small JPEG data set made in code, an input-bound training job, the doctor's verdict.

Modules: `images` (the data set), `train` (the training script, `python -m cpuwise.demo.train`),
`run` (drives the doctor on it and prints before/after).
"""
