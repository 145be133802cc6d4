"""Render: terminal, HTML, JSON and TensorBoard views of a Recording and its Findings."""
