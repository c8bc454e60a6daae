"""Pure modelling layer: splits, ordinal LightGBM strategies, calibration, ONNX export, metrics.

Submodules import numpy only at load time; LightGBM, onnxmltools, onnxruntime and
scikit-learn are imported inside the functions that need them, so importing
``huleedu_pipelines.modeling`` (and the Dagster code location) stays fast.
"""
