"""A registered bundle is verified whole against the registry's tag, on a real MLflow store.

Tampering happens where an attacker (or a broken copy) would do it: in the artifact store.
"""

import json
from pathlib import Path

import pytest
from fakes import register_in_mlflow, tiny_bundle

from huleedu_pipelines.modeling.bundle import MANIFEST_TAG, BundleIdentityError
from huleedu_pipelines.modeling.names import CEFR_MODEL, GRADE_MODEL
from huleedu_pipelines.modeling.onnx_export import ArtifactIntegrityError
from huleedu_pipelines.registry import MlflowRegistry, load_registered_bundle


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MlflowRegistry:
    folder = tmp_path_factory.mktemp("mlflow")
    return MlflowRegistry(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def _stored_bundle_json(registry: MlflowRegistry, name: str, version: str) -> Path:
    run_id = registry.get_version_by_number(name, version).run_id
    store = Path(registry.resolved_artifact_location().removeprefix("file://"))
    [path] = [p for p in store.rglob("bundle/bundle.json") if run_id in p.parts]
    return path


def test_registration_tags_the_manifest_and_loading_checks_every_byte(registry, tmp_path) -> None:
    bundle = tiny_bundle(GRADE_MODEL)
    version = register_in_mlflow(registry, GRADE_MODEL, bundle, tmp_path / "b")
    ref = registry.get_version_by_number(GRADE_MODEL, version)
    assert ref.tags[MANIFEST_TAG] == bundle.manifest_sha256
    loaded = load_registered_bundle(registry, GRADE_MODEL, version)
    assert loaded.decoding == bundle.decoding and loaded.family == "grade"

    stored = _stored_bundle_json(registry, GRADE_MODEL, version)
    description = json.loads(stored.read_text())
    description["class_labels"][3] = "D-"
    stored.write_text(json.dumps(description, indent=2, sort_keys=True))
    with pytest.raises(ArtifactIntegrityError, match=r"bundle\.json has sha256"):
        load_registered_bundle(registry, GRADE_MODEL, version)


def test_a_version_without_the_manifest_tag_is_refused(registry, tmp_path) -> None:
    version = register_in_mlflow(registry, GRADE_MODEL, tiny_bundle(GRADE_MODEL, 1), tmp_path / "b")
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=registry.tracking_uri).delete_model_version_tag(
        GRADE_MODEL, version, MANIFEST_TAG
    )
    with pytest.raises(ArtifactIntegrityError, match="no `bundle_manifest_sha256` tag"):
        load_registered_bundle(registry, GRADE_MODEL, version)


def test_a_cefr_bundle_registered_as_the_grade_model_is_refused(registry, tmp_path) -> None:
    cefr = tiny_bundle(CEFR_MODEL, 2)  # says model_name huleedu-cefr, family cefr
    version = register_in_mlflow(registry, GRADE_MODEL, cefr, tmp_path / "b")
    with pytest.raises(BundleIdentityError, match="is not that model"):
        load_registered_bundle(registry, GRADE_MODEL, version)
