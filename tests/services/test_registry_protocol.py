"""The fake registry the service tests use and the MLflow registry offer the same operations,
with the same signatures, as the `ModelRegistry` protocol: they cannot drift apart."""

import inspect
from pathlib import Path

import pytest
from fakes import FakeRegistry

from huleedu_pipelines.registry import MlflowRegistry, ModelRegistry
from huleedu_pipelines.resources import MlflowRegistryResource

OPERATIONS = sorted(
    name
    for name, member in vars(ModelRegistry).items()
    if callable(member) and not name.startswith("_")
)


def _signature(owner: type, name: str) -> inspect.Signature:
    return inspect.signature(getattr(owner, name), eval_str=True)


def test_the_protocol_names_every_operation_the_services_use() -> None:
    assert "log_model_version" in OPERATIONS and "download_bundle" in OPERATIONS
    assert len(OPERATIONS) == 12


@pytest.mark.parametrize("implementation", [MlflowRegistry, FakeRegistry])
@pytest.mark.parametrize("name", OPERATIONS)
def test_each_implementation_has_the_protocols_signature(implementation: type, name: str) -> None:
    assert _signature(implementation, name) == _signature(ModelRegistry, name)


def test_instances_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(FakeRegistry(tmp_path), ModelRegistry)
    assert isinstance(MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}"), ModelRegistry)


def test_the_resource_hands_out_the_registry_it_is_configured_for(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = MlflowRegistryResource(tracking_uri=uri, artifact_location="/srv/art").registry()
    assert isinstance(registry, MlflowRegistry)
    assert (registry.tracking_uri, registry.artifact_location) == (uri, "/srv/art")
