"""Loading a registered version's bundle, verified whole before anything uses it.

Serving, validation and monitoring all load bundles this way. A bundle that cannot be used
raises one of ``UNUSABLE_BUNDLE_ERRORS``: a digest that does not match
(``ArtifactIntegrityError``), a file the version lacks (``FileNotFoundError``) or a version
that is not registered (``ModelVersionNotFoundError``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from huleedu_pipelines.modeling.bundle import MANIFEST_TAG, ModelBundle
from huleedu_pipelines.modeling.families import identity_of
from huleedu_pipelines.modeling.onnx_export import ArtifactIntegrityError
from huleedu_pipelines.registry.protocol import (
    ONNX_SHA256_TAG,
    ModelRegistry,
    ModelVersionNotFoundError,
)

UNUSABLE_BUNDLE_ERRORS: tuple[type[Exception], ...] = (
    ArtifactIntegrityError,
    FileNotFoundError,
    ModelVersionNotFoundError,
)
"""What ``load_registered_bundle`` raises for a version that must not serve."""


def load_registered_bundle(
    registry: ModelRegistry, model_name: str, version: str, *, feature_version: str | None = None
) -> ModelBundle:
    """Download a registered version's bundle and verify it whole before use: the manifest
    against the version's `bundle_manifest_sha256` tag (a missing tag is an error), every file
    against the manifest, and the bundle's identity against `model_name` (and the feature
    version serving builds, when given). Nothing is left on disk; the bundle lives in memory."""
    ref = registry.get_version_by_number(model_name, version)
    expected = ref.tags.get(MANIFEST_TAG)
    if not expected:
        raise ArtifactIntegrityError(
            f"{model_name} v{version} has no `{MANIFEST_TAG}` tag, so its bundle cannot be "
            "verified and will not be used; retrain it (training registers the tag)"
        )
    with tempfile.TemporaryDirectory(prefix="huleedu-bundle-") as folder:
        bundle = ModelBundle.load(
            registry.download_bundle(model_name, version, Path(folder)),
            expected_manifest_sha256=expected,
        )
    recorded_onnx = ref.tags.get(ONNX_SHA256_TAG)
    if recorded_onnx is not None and recorded_onnx != bundle.onnx_sha256:
        raise ArtifactIntegrityError(
            f"{model_name} v{version}: the bundle's ONNX has sha256 {bundle.onnx_sha256}, the "
            f"registered version records {recorded_onnx}; re-register the model"
        )
    bundle.verify_identity(identity_of(model_name), feature_version)
    return bundle


__all__ = ["UNUSABLE_BUNDLE_ERRORS", "ArtifactIntegrityError", "load_registered_bundle"]
