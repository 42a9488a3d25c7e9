"""The training/evaluation engine: Lightning trainer wiring, checkpoints and end-of-run artifacts."""
