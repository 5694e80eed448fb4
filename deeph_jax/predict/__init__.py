"""Inference: bundles of trained models, and prediction for large structures."""
