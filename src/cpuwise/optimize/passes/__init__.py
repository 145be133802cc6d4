"""One module per optimization pass."""
