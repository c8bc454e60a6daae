"""Pure modelling layer: the model families (`families`), splits, ordinal LightGBM strategies,
calibration, ONNX export, metrics, report figures (`figures`) and their Markdown (`report`).

Submodules import numpy (and polars, for label selection) at load time; LightGBM,
onnxmltools, onnxruntime and scikit-learn are imported inside the functions that need them,
so importing ``huleedu_pipelines.modeling`` (and the Dagster code location) stays fast.
"""
