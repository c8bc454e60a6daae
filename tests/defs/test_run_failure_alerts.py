"""The run-failure alert: its JSON body reaches a real HTTP receiver, its URL stays out of logs."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from huleedu_pipelines.schedules.alerts import (
    AlertDeliveryError,
    build_run_failure_alert_sensor,
    failure_alert,
    post_alert,
    redact_url,
)
from huleedu_pipelines.settings import Settings


class Receiver(HTTPServer):
    bodies: list[dict]
    paths: list[str]
    content_types: list[str]
    authorizations: list[str | None]
    status: int


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.server.paths.append(self.path)
        self.server.content_types.append(self.headers["Content-Type"])
        self.server.authorizations.append(self.headers.get("Authorization"))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Handler)
    server.bodies, server.paths, server.content_types, server.status = [], [], [], 204
    server.authorizations = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _url(server: Receiver, suffix: str = "/hooks/T0KEN?token=s3cret") -> str:
    host, port = server.server_address[:2]
    return f"http://user:pa55@{host}:{port}{suffix}"


def test_post_alert_sends_the_json_body(receiver: Receiver) -> None:
    alert = failure_alert("nightly_inference_job", "run-123", "boom " * 1000, ["nightly_scores"])
    status = post_alert(_url(receiver), alert, timeout_seconds=2)
    assert status == 204
    assert receiver.content_types == ["application/json"]
    assert receiver.paths == ["/hooks/T0KEN?token=s3cret"]
    assert receiver.authorizations == ["Basic " + base64.b64encode(b"user:pa55").decode()]
    (body,) = receiver.bodies
    assert body["event"] == "dagster_run_failure"
    assert body["job"] == "nightly_inference_job"
    assert body["run_id"] == "run-123"
    assert body["failed_steps"] == ["nightly_scores"]
    assert body["error"] == ("boom " * 1000)[:2000]


def test_a_refusing_or_missing_receiver_names_no_secret(receiver: Receiver) -> None:
    receiver.status = 500
    with pytest.raises(AlertDeliveryError, match="HTTP 500") as refused:
        post_alert(_url(receiver), {"x": 1}, timeout_seconds=2)
    port = receiver.server_address[1]
    closed = f"http://user:pa55@127.0.0.1:{port + 1 if port < 65535 else 1}/h?token=s3cret"
    with pytest.raises(AlertDeliveryError, match="unreachable") as unreachable:
        post_alert(closed, {"x": 1}, timeout_seconds=2)
    for message in (str(refused.value), str(unreachable.value)):
        assert "s3cret" not in message and "pa55" not in message and "user" not in message


def test_only_http_webhooks_are_posted(tmp_path) -> None:
    with pytest.raises(AlertDeliveryError, match="http"):
        post_alert(f"file://{tmp_path}/x", {"x": 1}, timeout_seconds=1)


def test_redact_url_keeps_scheme_host_and_path_only() -> None:
    assert (
        redact_url("https://bot:key@hooks.example.org:8443/services/abc?token=x#f")
        == "https://hooks.example.org:8443/services/abc"
    )


@dg.asset
def failing_asset() -> None:
    raise RuntimeError("warehouse went away")


def test_sensor_logs_and_posts_a_failed_run(
    receiver: Receiver, capfd: pytest.CaptureFixture[str]
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([failing_asset], instance=instance, raise_on_error=False)
    assert not result.success
    url = _url(receiver)
    sensor = build_run_failure_alert_sensor(
        Settings(HULEEDU_ALERT_WEBHOOK_URL=url, HULEEDU_ALERT_TIMEOUT_SECONDS=2)
    )
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    capfd.readouterr()
    sensor(context)
    (body,) = receiver.bodies
    assert body["job"] == result.dagster_run.job_name
    assert body["run_id"] == result.run_id
    assert body["failed_steps"] == ["failing_asset"]
    assert "failing_asset: RuntimeError: warehouse went away" in body["error"]
    logged = "".join(capfd.readouterr())  # the sensor's log goes to Dagster's console handler
    assert result.run_id in logged and "warehouse went away" in logged
    assert "s3cret" not in logged and "pa55" not in logged
