"""Adapters from a cpuwise pipeline (numpy batches) to frameworks: torch, Keras 3, JAX / numpy.

Each lives in its own module and imports its framework only when called, so importing this package
stays cheap:
    cpuwise.data.adapters.torch   to_torch(ds, device=...), DataLoader (a drop-in for torch's)
    cpuwise.data.adapters.keras   to_keras(ds) -> keras.utils.PyDataset
    cpuwise.data.adapters.jax     to_numpy(ds), to_jax(ds, device=...)
    cpuwise.data.adapters.ray     to_ray(ds) -> ray.data.Dataset, from_ray(ray_ds, splits=n)
"""
