"""A registered version as an MLflow ``python_function`` model: decoded grades, not raw scores.

Each version's logged model (``models:/<name>/<version>``) holds two flavors over one folder:

- ``onnx``: ``model.onnx``, byte-identical to the bundle's graph. Scoring downloads it alone and
  checks it against the version's ``onnx_sha256`` tag (``MlflowRegistry.download_onnx``).
- ``python_function``: this module is its loader (MLflow's ``loader_module`` contract:
  ``_load_pyfunc(data_path)``). The verified bundle ships in the model folder under
  ``bundle/``; loading checks every file against the bundle's manifest and ``model.onnx``
  against the bundle's own graph, and predicting runs the bundle's ONNX prediction and numpy
  decoding (``ModelBundle.predict``), so ``mlflow models predict`` and ``mlflow.pyfunc``
  return what the product serves. Nothing is pickled.

The input is the bundle's feature columns (the version's signature); the output is one row
per input row: the decoded label (``grade``, ``cefr``, ``ielts_band`` or ``skill_level``),
``score`` (expected class index, continuous band or P(high skill)), ``confidence``, and
``probability_<class>`` per class for the classifiers (``rating_scale_score`` too for skill
models fitted on the teachers' rating).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from huleedu_pipelines.modeling.bundle import BundlePrediction, ModelBundle
from huleedu_pipelines.modeling.onnx_export import ArtifactIntegrityError

if TYPE_CHECKING:
    import pandas as pd

BUNDLE_SUBPATH = "bundle"
"""The bundle's folder inside the logged model (the python_function flavor's ``data``)."""
ONNX_FILE = "model.onnx"
"""The onnx flavor's data file, beside ``bundle/``."""
LABEL_COLUMNS = {"grade": "grade", "cefr": "cefr", "band": "ielts_band", "skill": "skill_level"}
"""The decoded label's column, by family (the warehouse's names where it has one)."""
PROBABILITY_PREFIX = "probability_"


class BundleFeatureError(ValueError):
    """Input rows that do not carry the bundle's feature columns."""


def save_model(
    path: str,
    mlflow_model: Any,
    *,
    onnx_model: Any,
    bundle_dir: str | Path,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """Write the logged model: MLflow's onnx flavor (``model.onnx`` unchanged), the bundle
    under ``bundle/`` and a python_function flavor loaded by this module.

    Called by ``mlflow.models.Model.log(flavor=this module, ...)``; ``kwargs`` are what
    ``Model.log`` passes on to every flavor and are not used here."""
    del kwargs
    import mlflow.onnx
    from mlflow import pyfunc
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.utils.environment import _CONDA_ENV_FILE_NAME, _PYTHON_ENV_FILE_NAME

    mlflow.onnx.save_model(
        onnx_model,
        path,
        mlflow_model=mlflow_model,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        save_as_external_data=False,  # keep model.onnx byte-identical to the bundle's graph
        onnx_execution_providers=["CPUExecutionProvider"],
    )
    shutil.copytree(Path(bundle_dir), Path(path) / BUNDLE_SUBPATH)
    pyfunc.add_to_model(  # replaces the onnx flavor's own python_function loader
        mlflow_model,
        loader_module=__name__,
        data=BUNDLE_SUBPATH,
        conda_env=_CONDA_ENV_FILE_NAME,
        python_env=_PYTHON_ENV_FILE_NAME,
    )
    mlflow_model.model_size_bytes = sum(
        p.stat().st_size for p in Path(path).rglob("*") if p.is_file()
    )
    mlflow_model.save(str(Path(path) / MLMODEL_FILE_NAME))


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> ServedBundle:
    """MLflow's loader hook: the bundle at ``data_path`` (the model's ``bundle/``), verified."""
    del model_config
    return ServedBundle.load(Path(data_path))


class ServedBundle:
    """The pyfunc model: feature rows in, decoded predictions out (``predict``)."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    @classmethod
    def load(cls, bundle_dir: Path) -> ServedBundle:
        """Load ``bundle_dir`` after checking its files against its manifest, the model folder's
        ``model.onnx`` (when beside it) against the bundle's graph, and the bundle against
        the identity its own name requires."""
        from huleedu_pipelines.modeling.families import identity_of

        bundle = ModelBundle.load(bundle_dir)
        served_onnx = bundle_dir.parent / ONNX_FILE
        if served_onnx.is_file():
            digest = hashlib.sha256(served_onnx.read_bytes()).hexdigest()
            if digest != bundle.onnx_sha256:
                raise ArtifactIntegrityError(
                    f"{served_onnx} has sha256 {digest}, the bundle's graph "
                    f"{bundle.onnx_sha256}: the logged model was changed — re-register it"
                )
        bundle.verify_identity(identity_of(bundle.model_name))
        return cls(bundle)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        del params
        return prediction_frame(
            self.bundle, self.bundle.predict(feature_rows(self.bundle, model_input))
        )


def feature_rows(bundle: ModelBundle, model_input: Any) -> np.ndarray:
    """The bundle's feature matrix from a DataFrame with its feature columns (in any order,
    extra columns ignored) or from an array of rows already in feature-column order."""
    import pandas as pd

    columns = bundle.feature_columns
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        missing = [name for name in columns if name not in model_input.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise BundleFeatureError(
                f"{bundle.model_name} reads {len(columns)} feature columns; the input lacks "
                f"{shown} (the version's signature lists them all)"
            )
        return model_input[columns].to_numpy(dtype=np.float64)
    rows = np.asarray(model_input, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != len(columns):
        raise BundleFeatureError(
            f"{bundle.model_name} reads rows of {len(columns)} features; got an array of shape "
            f"{rows.shape} (pass a DataFrame with the signature's columns)"
        )
    return rows


def prediction_frame(bundle: ModelBundle, prediction: BundlePrediction) -> pd.DataFrame:
    """One row per prediction: the decoded label, score, confidence and class probabilities."""
    import pandas as pd

    label_column = LABEL_COLUMNS.get(bundle.family, "label")
    columns: dict[str, Any] = {}
    if bundle.task == "regression":
        columns[label_column] = np.asarray(prediction.labels, dtype=np.float64)
    else:
        labels = np.asarray(bundle.class_labels, dtype=object)
        columns[label_column] = labels[np.asarray(prediction.labels, dtype=np.int64)]
    columns["score"] = np.asarray(prediction.score, dtype=np.float64)
    columns["confidence"] = np.asarray(prediction.confidence, dtype=np.float64)
    if prediction.probabilities is not None:
        for index, label in enumerate(bundle.class_labels):
            columns[f"{PROBABILITY_PREFIX}{label}"] = prediction.probabilities[:, index]
    elif bundle.task == "binary":
        negative, positive = bundle.class_labels
        columns[f"{PROBABILITY_PREFIX}{negative}"] = 1.0 - columns["score"]
        columns[f"{PROBABILITY_PREFIX}{positive}"] = columns["score"]
    if prediction.rating_scale_score is not None:
        columns["rating_scale_score"] = np.asarray(prediction.rating_scale_score, np.float64)
    return pd.DataFrame(columns)


def served_example(
    bundle_dir: Path, feature_rows_example: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A few feature rows as the served input (named columns) and the served output for them,
    for the version's signature and input example."""
    import pandas as pd

    served = ServedBundle(ModelBundle.load(Path(bundle_dir)))
    rows = np.asarray(feature_rows_example, dtype=np.float64)
    frame = pd.DataFrame(rows, columns=list(served.bundle.feature_columns))
    return frame, served.predict(frame)


__all__ = [
    "BUNDLE_SUBPATH",
    "LABEL_COLUMNS",
    "BundleFeatureError",
    "ServedBundle",
    "feature_rows",
    "prediction_frame",
    "save_model",
    "served_example",
]
