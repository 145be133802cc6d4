"""What ships: the artifact folder, the Predictor that serves it, its prediction cache and micro-batcher."""
