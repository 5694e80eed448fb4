"""Training: configs, data pipeline, jitted data-parallel steps, checkpoints, evaluation."""
