"""How runs execute their steps: Dagster's default, or a Kubernetes Job per step whose pod
requests come from the heavy assets' tags."""

import json

import dagster as dg

from huleedu_pipelines.definitions import build_definitions
from huleedu_pipelines.settings import Settings


def _defs(**settings: str) -> dg.Definitions:
    return build_definitions(Settings.model_construct(**settings))


def test_jobs_keep_the_default_executor_unless_k8s_is_chosen() -> None:
    default = _defs().resolve_job_def("training_job").executor_def
    assert default.name == "multi_or_in_process_executor"
    on_k8s = _defs(run_executor="k8s_job")
    for job in ("training_job", "nightly_inference_job"):
        assert on_k8s.resolve_job_def(job).executor_def.name == "k8s"


def test_the_heavy_steps_carry_their_pod_requests() -> None:
    job = _defs().resolve_job_def("training_job")
    tags = {node.name: node.definition.tags for node in job.graph.node_dict.values()}
    pod = json.loads(tags["essay_embeddings"]["dagster-k8s/config"])  # tags hold JSON text
    embeddings = pod["container_config"]["resources"]
    assert embeddings == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "6Gi"}}
    assert "dagster-k8s/config" in tags["grade_model"]
    assert "dagster-k8s/config" not in tags["raw_essays"]
