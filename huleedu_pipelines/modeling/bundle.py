"""A trained model as it is stored, registered and served: one ONNX graph plus JSON.

Every model (ordinal grade or CEFR, band regressor, skill classifier) is one or more
LightGBM boosters. They are exported to ONNX and combined into ONE graph with a shared
`features` input and one output per booster, so each registered version has a single ONNX
artifact and sha256. Decoding (ordinal probabilities, cut points) and calibration run in numpy
after ONNX from parameters stored in `bundle.json` (calibrated LightGBM through
skl2onnx is silently wrong). Native LightGBM model files are kept beside it for parity checks
and per-essay explanations (`modeling.explanations`: Saabas paths or TreeSHAP); serving never
unpickles anything.

A saved bundle is verified whole: `manifest.json` lists the sha256 of every file (bundle.json
with its cut points and calibration included), and the sha256 of the manifest itself is a tag
on the registered version, so editing any byte of any file is caught on load. `bundle.json`
also says what the model is (name, family, task, class labels, feature version), so a bundle
registered under another model's name is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from huleedu_pipelines.modeling.calibration import apply_calibrator, apply_multiclass_calibrator
from huleedu_pipelines.modeling.explanations import EXPLAIN_METHODS, SAABAS, TREESHAP
from huleedu_pipelines.modeling.metrics import normalized_entropy_confidence
from huleedu_pipelines.modeling.onnx_export import (
    INPUT_NAME,
    ArtifactIntegrityError,
    booster_to_onnx,
    sha256_bytes,
)
from huleedu_pipelines.modeling.ordinal import decode_ordinal, decode_ordinal_labels
from huleedu_pipelines.modeling.stacking import Blend, StackedInput

if TYPE_CHECKING:
    from huleedu_pipelines.modeling.explanations import PathExplainer

TASKS = ("ordinal", "regression", "binary")
ONNX_FILE = "model.onnx"
BUNDLE_FILE = "bundle.json"
MANIFEST_FILE = "manifest.json"
MANIFEST_TAG = "bundle_manifest_sha256"
"""The registered version's tag holding the sha256 of the bundle's manifest.json."""
BAND_MIN, BAND_MAX = 0.0, 9.0


@dataclass(frozen=True)
class ModelIdentity:
    """What a bundle registered under a name must say about itself, so a bundle registered
    under the wrong name (a CEFR model behind `huleedu-grade-sv`) is refused on load.

    *family* is grade, cefr, band or skill; *task* is ordinal, regression or binary. The
    expected identity of each registered name comes from `modeling.families.identity_of`.
    """

    model_name: str
    family: str
    task: str
    class_labels: tuple[str, ...]


def _output_name(kind: str) -> str:
    return "variable" if kind == "regression" else "probabilities"


def combine_onnx_models(models: Sequence[bytes], kinds: Sequence[str], n_features: int) -> bytes:
    """Merge single-booster ONNX graphs into one graph with outputs `b<i>_<output>`."""
    import onnx
    from onnx import helper

    loaded = [onnx.load_from_string(data) for data in models]
    nodes, initializers, outputs = [], [], []
    opsets: dict[str, int] = {}
    for index, (model, kind) in enumerate(zip(loaded, kinds, strict=True)):
        prefix = f"b{index}_"

        def rename(name: str, prefix: str = prefix) -> str:
            return name if name in (INPUT_NAME, "") else prefix + name

        for position, node in enumerate(model.graph.node):
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"{prefix}{node.name or 'node'}_{position}"
            del copy.input[:]
            copy.input.extend(rename(name) for name in node.input)
            del copy.output[:]
            copy.output.extend(rename(name) for name in node.output)
            nodes.append(copy)
        for tensor in model.graph.initializer:
            copy = onnx.TensorProto()
            copy.CopyFrom(tensor)
            copy.name = rename(tensor.name)
            initializers.append(copy)
        for output in model.graph.output:
            if output.name == _output_name(kind):
                copy = onnx.ValueInfoProto()
                copy.CopyFrom(output)
                copy.name = rename(output.name)
                outputs.append(copy)
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    graph = helper.make_graph(
        nodes, "huleedu_model", [loaded[0].graph.input[0]], outputs, initializers
    )
    combined = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())]
    )
    combined.ir_version = max(model.ir_version for model in loaded)
    for key, value in (("booster_kinds", json.dumps(list(kinds))), ("n_features", str(n_features))):
        entry = combined.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(combined)
    return combined.SerializeToString()


@dataclass(frozen=True)
class BundlePrediction:
    """What a bundle says about each row.

    `labels`: class index (ordinal, binary) or half band (regression); `probabilities`: (n, K)
    for ordinal models, None otherwise; `score`: P(high) for binary, the continuous band
    for regression, expected class for ordinal; `confidence` in [0, 1]. `rating_scale_score`:
    for binary models fitted on the teachers' rating (skills, `info["fit_target"] == "rating"`),
    the regression on that rating scale before Platt maps it to P(high); None otherwise.
    """

    labels: NDArray[Any]
    probabilities: NDArray[np.float64] | None
    score: NDArray[np.float64]
    confidence: NDArray[np.float64]
    rating_scale_score: NDArray[np.float64] | None = None


@dataclass
class ModelBundle:
    model_name: str
    task: str
    feature_columns: list[str]
    class_labels: list[str]
    booster_kinds: list[str]
    native_models: list[str]
    onnx_model: bytes
    decoding: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    """grade, cefr, band or skill (see `modeling.families`)."""
    feature_version: str = ""
    """The feature version of the table it was trained on; serving refuses another."""
    stacking: dict[str, Any] | None = None
    """Stacked models (`modeling.stacking`): the ridge stage that builds the boosters' input
    from the feature vector and the blend applied to their output, as JSON-ready arrays. The
    ONNX graph then holds the boosters alone; numpy applies the rest on both paths."""
    compiled: Any = field(default=None, repr=False, compare=False)
    """Optional compiled boosters (`modeling.compiled_trees`, set only after their parity
    check passed): `predict` then reads them instead of the ONNX graph."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    @classmethod
    def from_boosters(
        cls,
        *,
        model_name: str,
        task: str,
        feature_columns: Sequence[str],
        class_labels: Sequence[str],
        boosters: Sequence[Any],
        booster_kinds: Sequence[str],
        decoding: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
        info: dict[str, Any] | None = None,
        family: str = "",
        feature_version: str = "",
        stacking: dict[str, Any] | None = None,
    ) -> ModelBundle:
        n_features = len(feature_columns)
        if stacking is not None:
            stage = StackedInput.from_dict(stacking["input"])
            n_features = len(stage.handcrafted) + len(stage.ridges)
        onnx_parts = [
            booster_to_onnx(booster, n_features, kind, name=f"{model_name}-{index}")
            for index, (booster, kind) in enumerate(zip(boosters, booster_kinds, strict=True))
        ]
        return cls(
            model_name=model_name,
            task=task,
            feature_columns=list(feature_columns),
            class_labels=list(class_labels),
            booster_kinds=list(booster_kinds),
            native_models=[booster.model_to_string() for booster in boosters],
            onnx_model=combine_onnx_models(onnx_parts, booster_kinds, n_features),
            decoding=dict(decoding or {}),
            calibration=calibration,
            info=dict(info or {}),
            family=family,
            feature_version=feature_version,
            stacking=stacking,
        )

    # -- storage ------------------------------------------------------------------------
    @property
    def onnx_sha256(self) -> str:
        return sha256_bytes(self.onnx_model)

    def _files(self) -> dict[str, bytes]:
        """Every file of the saved bundle, by name."""
        description = {
            "model_name": self.model_name,
            "family": self.family,
            "task": self.task,
            "feature_version": self.feature_version,
            "feature_columns": self.feature_columns,
            "class_labels": self.class_labels,
            "booster_kinds": self.booster_kinds,
            "decoding": self.decoding,
            "calibration": self.calibration,
            "info": self.info,
        }
        if self.stacking is not None:
            description["stacking"] = self.stacking
        files = {ONNX_FILE: self.onnx_model}
        for index, text in enumerate(self.native_models):
            files[f"booster_{index}.txt"] = text.encode("utf-8")
        files[BUNDLE_FILE] = json.dumps(description, indent=2, sort_keys=True).encode("utf-8")
        return files

    def manifest_bytes(self) -> bytes:
        """`manifest.json`: the sha256 of every file of the bundle."""
        digests = {name: sha256_bytes(data) for name, data in sorted(self._files().items())}
        return json.dumps({"files": digests}, indent=2, sort_keys=True).encode("utf-8")

    @property
    def manifest_sha256(self) -> str:
        """The digest registered as the version tag that loading checks the manifest against."""
        return sha256_bytes(self.manifest_bytes())

    def save(self, directory: Path) -> Path:
        """Write model.onnx, booster_<i>.txt, bundle.json and manifest.json."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self._files().items():
            (directory / name).write_bytes(data)
        (directory / MANIFEST_FILE).write_bytes(self.manifest_bytes())
        return directory

    @classmethod
    def load(cls, directory: Path, *, expected_manifest_sha256: str | None = None) -> ModelBundle:
        """Read a saved bundle after checking every file against `manifest.json` (and the
        manifest against `expected_manifest_sha256`, the registered version's tag, when given).

        A file the manifest does not list is refused too: the folder must be the bundle, whole.
        """
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ArtifactIntegrityError(
                f"{directory} has no {MANIFEST_FILE}, so its files cannot be verified; the model "
                "was saved by an older version of the pipeline — retrain it"
            )
        manifest_data = manifest_path.read_bytes()
        if expected_manifest_sha256 is not None:
            _verify(manifest_path, manifest_data, expected_manifest_sha256, "the registry records")
        listed: dict[str, str] = json.loads(manifest_data)["files"]
        present = {p.name for p in directory.iterdir() if p.is_file()} - {MANIFEST_FILE}
        unlisted = sorted(present - set(listed))
        if unlisted:
            raise ArtifactIntegrityError(
                f"{directory} holds files its manifest does not list ({', '.join(unlisted)}); "
                "the bundle was changed — download the model version again"
            )
        files = {}
        for name, expected in listed.items():
            path = directory / name
            if not path.is_file():
                raise ArtifactIntegrityError(f"{path} is missing from the bundle; retrain it")
            files[name] = path.read_bytes()
            _verify(path, files[name], expected, "the bundle's manifest records")
        manifest = json.loads(files[BUNDLE_FILE])
        n_boosters = len(manifest["booster_kinds"])
        return cls(
            model_name=manifest["model_name"],
            task=manifest["task"],
            feature_columns=manifest["feature_columns"],
            class_labels=manifest["class_labels"],
            booster_kinds=manifest["booster_kinds"],
            native_models=[files[f"booster_{i}.txt"].decode("utf-8") for i in range(n_boosters)],
            onnx_model=files[ONNX_FILE],
            decoding=manifest["decoding"],
            calibration=manifest["calibration"],
            info=manifest["info"],
            family=manifest.get("family", ""),
            feature_version=manifest.get("feature_version", ""),
            stacking=manifest.get("stacking"),
        )

    def verify_identity(self, expected: ModelIdentity, feature_version: str | None = None) -> None:
        """Refuse a bundle that is not the model `expected.model_name` must hold (family, task,
        class labels, its own recorded name), or that reads another feature version than
        serving builds (`feature_version`, when given)."""
        model_name = expected.model_name
        found = {
            "model name": (self.model_name, model_name),
            "family": (self.family, expected.family),
            "task": (self.task, expected.task),
            "class labels": (tuple(self.class_labels), expected.class_labels),
        }
        if feature_version is not None:
            found["feature version"] = (self.feature_version, feature_version)
        wrong = [
            f"{what} {got!r} (expected {want!r})"
            for what, (got, want) in found.items()
            if got != want
        ]
        if wrong:
            raise BundleIdentityError(
                f"the bundle registered as {model_name} is not that model: {'; '.join(wrong)}; "
                "register the right bundle under this name (or retrain) before it can serve"
            )

    # -- inference ----------------------------------------------------------------------
    @cached_property
    def _session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return ort.InferenceSession(
            self.onnx_model, sess_options=options, providers=["CPUExecutionProvider"]
        )

    @cached_property
    def native_boosters(self) -> list[Any]:
        import lightgbm as lgb

        return [lgb.Booster(model_str=text) for text in self.native_models]

    @cached_property
    def path_explainer(self) -> PathExplainer:
        """Saabas contributions of the first booster (built once from its model text)."""
        from huleedu_pipelines.modeling.explanations import PathExplainer

        return PathExplainer.from_booster(self.native_boosters[0])

    def contributions(
        self, X: ArrayLike, *, method: str = SAABAS, n_jobs: int = 1
    ) -> NDArray[np.float64]:
        """(n, booster inputs) contributions of the first booster to its raw output for
        feature rows `X` (`modeling.explanations`: `saabas` or `treeshap`)."""
        from huleedu_pipelines.modeling.explanations import treeshap_contributions

        features = self.booster_input(X)
        if method == SAABAS:
            return self.path_explainer.contributions(features, n_jobs=n_jobs)
        if method == TREESHAP:
            return treeshap_contributions(self.native_boosters[0], features, n_jobs=n_jobs)
        raise ValueError(f"explain method must be one of {EXPLAIN_METHODS}, got {method!r}")

    @cached_property
    def _stacked_input(self) -> StackedInput | None:
        return None if self.stacking is None else StackedInput.from_dict(self.stacking["input"])

    @cached_property
    def _blend(self) -> Blend | None:
        return None if self.stacking is None else Blend.from_dict(self.stacking["blend"])

    @property
    def booster_feature_names(self) -> list[str]:
        """The boosters' input columns: the feature columns, or for a stacked model its
        handcrafted columns followed by the stacked ridge predictions."""
        stage = self._stacked_input
        if stage is None:
            return list(self.feature_columns)
        return [self.feature_columns[i] for i in stage.handcrafted] + list(stage.ridge_names)

    def booster_input(self, X: ArrayLike) -> NDArray[np.float64]:
        """What the boosters read for feature rows `X` (X itself unless the model is stacked)."""
        stage = self._stacked_input
        return np.asarray(X, dtype=np.float64) if stage is None else stage.booster_input(X)

    def onnx_raw_outputs(self, X: ArrayLike) -> list[NDArray[np.float64]]:
        """Per booster, what native `booster.predict` returns, computed by onnxruntime."""
        features = np.ascontiguousarray(self.booster_input(X), dtype=np.float32)
        names = [f"b{i}_{_output_name(kind)}" for i, kind in enumerate(self.booster_kinds)]
        results = self._session.run(names, {INPUT_NAME: features})
        return [
            _raw(np.asarray(r, dtype=np.float64), k)
            for r, k in zip(results, self.booster_kinds, strict=True)
        ]

    def native_raw_outputs(self, X: ArrayLike, n_jobs: int = 1) -> list[NDArray[np.float64]]:
        features = self.booster_input(X)
        return [
            np.asarray(booster.predict(features, num_threads=n_jobs), dtype=np.float64)
            for booster in self.native_boosters
        ]

    def predict(self, X: ArrayLike, *, native: bool = False) -> BundlePrediction:
        """Serve through ONNX (default; the compiled boosters instead when `compiled` is set)
        or native LightGBM; all decode the same way."""
        if native:
            raw = self.native_raw_outputs(X)
        elif self.compiled is not None:
            raw = self.compiled.raw_outputs(self.booster_input(X))
        else:
            raw = self.onnx_raw_outputs(X)
        return self.decode_raw(X, raw)

    def decode_raw(self, X: ArrayLike, raw: Sequence[NDArray[np.float64]]) -> BundlePrediction:
        """Decode the boosters' outputs `raw` for feature rows `X` (a stacked model's blend
        reads `X`)."""
        if self._blend is not None:
            raw = [self._blend.apply(X, raw[0]), *raw[1:]]
        return self.decode(raw)

    def decode(self, raw: Sequence[NDArray[np.float64]]) -> BundlePrediction:
        if self.task == "ordinal":
            probabilities = decode_ordinal(raw, self.decoding)
            if self.calibration is not None:
                probabilities = apply_multiclass_calibrator(self.calibration, probabilities)
            labels = decode_ordinal_labels(raw, self.decoding)
            expected = probabilities @ np.arange(probabilities.shape[1], dtype=np.float64)
            return BundlePrediction(
                labels, probabilities, expected, normalized_entropy_confidence(probabilities)
            )
        if self.task == "regression":
            value = np.clip(raw[0], BAND_MIN, BAND_MAX)
            labels = np.clip(np.round(value * 2.0) / 2.0, BAND_MIN, BAND_MAX)
            sigma = float(self.decoding.get("residual_sd", 1.0))
            confidence = np.full(value.shape, float(np.exp(-sigma)), dtype=np.float64)
            return BundlePrediction(labels, None, value, confidence)
        score = raw[0]
        on_rating_scale = score if self.info.get("fit_target") == "rating" else None
        if self.calibration is not None:
            score = apply_calibrator(self.calibration, score)
        score = np.clip(score, 0.0, 1.0)
        return BundlePrediction(
            (score >= 0.5).astype(np.int64),
            None,
            score,
            np.abs(2.0 * score - 1.0),
            rating_scale_score=on_rating_scale,
        )


def _raw(result: NDArray[np.float64], kind: str) -> NDArray[np.float64]:
    if kind == "binary":
        return result[:, 1]
    if kind == "regression":
        return result[:, 0]
    return result


class BundleIdentityError(ArtifactIntegrityError):
    """A verified bundle that is not the model its registered name says it is."""


def _verify(path: Path, data: bytes, expected: str, recorded_by: str) -> None:
    actual = sha256_bytes(data)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"{path} has sha256 {actual}, {recorded_by} {expected}: the artifact was "
            "changed or truncated; download the model version again (or retrain it)"
        )
