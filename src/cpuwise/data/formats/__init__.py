"""Where samples come from: sequences and iterables in memory, files and folders, CSV tables.

Each module ends in the `from_*` functions that start a Dataset with a source stage.
"""
