"""cpuwise optimize: the fastest CPU version of a model within an accuracy budget."""
