"""Tools around a pipeline: cache a frozen backbone's features, find a model's batch size.

Both load torch when called; `cd.cache_features` and `cd.find_batch_size` import them on use.
"""
