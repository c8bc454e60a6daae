"""deploy/helm/values.yaml against the official Dagster chart's documented keys.

No Helm renderer installs from a package registry here, so the file is checked against the key
paths of the chart's values schema (helm/dagster/values.schema.json in dagster-io/dagster, the
1.x chart): only keys the chart knows, the required ones present, our image's code location
started with arguments `dagster api grpc` accepts, the K8sRunLauncher with per-run requests,
PostgreSQL outside the chart with its password from a secret, and the instance config the chart
renders accepted by Dagster itself with the same queue rules as deploy/dagster.yaml.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
VALUES = REPO / "deploy" / "helm" / "values.yaml"
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"

# Key paths of the chart's values schema (DagsterHelmValues and its definitions).
TOP_LEVEL = {
    "dagsterWebserver",
    "dagster-user-deployments",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret",
    "rabbitmq",
    "redis",
    "flower",
    "ingress",
    "imagePullSecrets",
    "computeLogManager",
    "scheduler",
    "runLauncher",
    "pythonLogs",
    "dagsterDaemon",
    "busybox",
    "migrate",
    "telemetry",
    "serviceAccount",
    "global",
    "retention",
    "additionalInstanceConfig",
}
GLOBAL = {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"}
POSTGRESQL = {
    "image",
    "enabled",
    "postgresqlHost",
    "postgresqlUsername",
    "postgresqlPassword",
    "postgresqlDatabase",
    "postgresqlParams",
    "postgresqlScheme",
    "service",
}
USER_DEPLOYMENTS = {"enabled", "enableSubchart", "imagePullSecrets", "deployments"}
USER_DEPLOYMENT = {
    "name",
    "image",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "includeConfigInLaunchedRuns",
    "deploymentNamespace",
    "port",
    "env",
    "envConfigMaps",
    "envSecrets",
    "annotations",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "labels",
    "volumeMounts",
    "volumes",
    "schedulerName",
    "initContainers",
    "sidecarContainers",
}
IMAGE = {"repository", "tag", "pullPolicy"}
PULL_POLICIES = {"Always", "IfNotPresent", "Never"}
K8S_RUN_LAUNCHER = {
    "image",
    "imagePullPolicy",
    "jobNamespace",
    "loadInclusterConfig",
    "kubeconfigFile",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
    "labels",
    "failPodOnRunFailure",
    "resources",
    "schedulerName",
    "securityContext",
    "runK8sConfig",
}
K8S_RUN_LAUNCHER_REQUIRED = {
    "imagePullPolicy",
    "loadInclusterConfig",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
}
RUN_K8S_CONFIG = {
    "containerConfig",
    "podSpecConfig",
    "podTemplateSpecMetadata",
    "jobSpecConfig",
    "jobMetadata",
}
RUN_COORDINATOR = {"enabled", "type", "config"}
QUEUED_RUN_COORDINATOR = {
    "maxConcurrentRuns",
    "tagConcurrencyLimits",
    "dequeueIntervalSeconds",
    "dequeueNumWorkers",
    "dequeueUseThreads",
    "blockOpConcurrencyLimitedRuns",
}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def test_only_keys_the_chart_knows(values: dict[str, Any]) -> None:
    assert set(values) <= TOP_LEVEL, set(values) - TOP_LEVEL
    assert set(values["global"]) <= GLOBAL
    assert set(values["postgresql"]) <= POSTGRESQL
    assert set(values["dagster-user-deployments"]) <= USER_DEPLOYMENTS
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= USER_DEPLOYMENT, set(deployment) - USER_DEPLOYMENT
        assert set(deployment["image"]) <= IMAGE
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(k8s) <= K8S_RUN_LAUNCHER, set(k8s) - K8S_RUN_LAUNCHER
    assert set(k8s) >= K8S_RUN_LAUNCHER_REQUIRED
    assert set(k8s["runK8sConfig"]) <= RUN_K8S_CONFIG
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert set(coordinator) == RUN_COORDINATOR
    assert set(coordinator["config"]["queuedRunCoordinator"]) <= QUEUED_RUN_COORDINATOR


def parse_dagster_command_line(args: list[str]):
    """Parse `dagster <group> <command> ...` with dagster's own click CLI, without running it."""
    from dagster._cli import cli

    command, context = cli, cli.make_context("dagster", list(args))
    remaining = list(args)
    while hasattr(command, "resolve_command"):
        name, command, remaining = command.resolve_command(context, remaining)
        context = command.make_context(name, remaining, parent=context)
        remaining = [*getattr(context, "protected_args", []), *context.args]
    return context


def test_user_code_deployment_serves_our_definitions(values: dict[str, Any]) -> None:
    user = values["dagster-user-deployments"]
    assert user["enabled"] is True and user["enableSubchart"] is True
    (deployment,) = user["deployments"]
    assert deployment["image"]["repository"].endswith("/huleedu-pipelines")
    assert isinstance(deployment["image"]["tag"], str) and deployment["image"]["tag"] != "latest"
    assert deployment["image"]["pullPolicy"] in PULL_POLICIES
    assert isinstance(deployment["port"], int)
    args = deployment["dagsterApiGrpcArgs"]
    # The chart starts `dagster api grpc <args> -p <port>`: the same CLI parses them here.
    context = parse_dagster_command_line(["api", "grpc", *args, "-p", str(deployment["port"])])
    module, attribute = context.params["module_name"], context.params["attribute"]
    assert (module, attribute) == ("huleedu_pipelines.definitions", "defs")
    assert hasattr(importlib.import_module(module), attribute)
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_user_code_env_names_settings_and_secrets_stay_in_secrets(values: dict[str, Any]) -> None:
    from huleedu_pipelines.settings import Settings

    settings = {field.alias for field in Settings.model_fields.values()}
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    for name, value in deployment["env"].items():
        assert name in settings, f"{name} is not a setting"
        assert "@" not in value and "password" not in value.lower(), name
    assert "HULEEDU_WAREHOUSE_URL" not in deployment["env"]  # a secret: envSecrets
    assert deployment["envSecrets"] == [{"name": "huleedu-secrets"}]
    mounts = {mount["mountPath"] for mount in deployment["volumeMounts"]}
    assert deployment["env"]["HULEEDU_HOME"] in mounts


def test_runs_are_kubernetes_jobs_with_requests(values: dict[str, Any]) -> None:
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    assert k8s["imagePullPolicy"] in PULL_POLICIES
    assert k8s["envSecrets"] == [{"name": "huleedu-secrets"}]
    resources = k8s["runK8sConfig"]["containerConfig"]["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_per_step_resources_tag_is_dagster_k8s_config() -> None:
    """The tag the file documents for per-step requests is the one dagster-k8s reads, and the
    example it gives parses as that tag's value."""
    from dagster_k8s import k8s_job_executor
    from dagster_k8s.job import USER_DEFINED_K8S_CONFIG_KEY, get_user_defined_k8s_config

    text = VALUES.read_text()
    assert USER_DEFINED_K8S_CONFIG_KEY == "dagster-k8s/config"
    assert f'"{USER_DEFINED_K8S_CONFIG_KEY}"' in text and "k8s_job_executor" in text
    assert k8s_job_executor.name == "k8s"
    example = {
        "container_config": {
            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "6Gi"}}
        }
    }
    # Dagster stores op tags as JSON strings; dagster-k8s reads the step's pod config from them.
    config = get_user_defined_k8s_config({USER_DEFINED_K8S_CONFIG_KEY: json.dumps(example)})
    assert config.container_config["resources"]["requests"]["memory"] == "4Gi"


def test_postgres_is_external_with_its_password_in_a_secret(values: dict[str, Any]) -> None:
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert postgresql["postgresqlHost"] and postgresql["postgresqlDatabase"] == "dagster"
    assert postgresql["postgresqlPassword"] == ""
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert isinstance(postgresql["service"]["port"], int)


def test_rendered_instance_config_is_valid_with_the_compose_queue_rules(
    values: dict[str, Any], tmp_path: Path
) -> None:
    """The chart renders the daemon's run coordinator, monitoring and retries plus
    additionalInstanceConfig into dagster.yaml; Dagster accepts the result, and its queue rules
    are deploy/dagster.yaml's."""
    import dagster as dg

    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert not daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring, retries = daemon["runMonitoring"], daemon["runRetries"]
    rendered = {
        # The chart's template (helpers/instance/_run-coordinator.tpl) renders no `config`
        # for an empty queuedRunCoordinator, and only the fields that are set otherwise.
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "max_runtime_seconds": monitoring["maxRuntimeSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        },
        "run_retries": {"enabled": retries["enabled"], "max_retries": retries["maxRetries"]},
        "telemetry": values["telemetry"],
        **values["additionalInstanceConfig"],
    }
    # The chart's K8sRunLauncher resumes runs whose pod died; the default launcher of this test
    # instance (no cluster here) cannot, so resumption is off for the instance built below.
    from dagster_k8s import K8sRunLauncher

    assert monitoring["maxResumeRunAttempts"] >= 1
    assert K8sRunLauncher.supports_resume_run.fget(None) is True
    rendered["run_monitoring"]["max_resume_run_attempts"] = 0
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        helm_queue = instance.get_concurrency_config()

    compose = yaml.safe_load(DAGSTER_YAML.read_text())["concurrency"]
    helm = values["additionalInstanceConfig"]["concurrency"]
    assert helm["runs"]["tag_concurrency_limits"] == compose["runs"]["tag_concurrency_limits"]
    assert helm["pools"] == compose["pools"]
    assert helm_queue.pool_config.default_pool_limit == compose["pools"]["default_limit"]
