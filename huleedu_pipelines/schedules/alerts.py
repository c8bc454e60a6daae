"""`run_failure_alert_sensor`: a failed run of any job in this code location raises an alert.

The alert is an ERROR log line on the sensor (job, run id, error) and, when
`HULEEDU_ALERT_WEBHOOK_URL` is set, a small JSON POST to that URL (Slack-, Teams- or
Alertmanager-style receivers take it through their generic webhook). The URL can carry a token
in its path or query, so it is never logged whole: log lines name only its scheme, host and path.
A webhook that is down is logged and does not fail the sensor (the log line is the alert too).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import dagster as dg

from huleedu_pipelines.settings import Settings

MAX_ERROR_CHARS = 2000
"""An alert carries the start of a long error (a webhook is no place for a whole traceback)."""


def redact_url(url: str) -> str:
    """`url` without credentials, query or fragment: what a log line may say about it."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def failure_alert(job_name: str, run_id: str, error: str, failed_steps: list[str]) -> dict:
    """The JSON body of an alert about one failed run."""
    return {
        "event": "dagster_run_failure",
        "job": job_name,
        "run_id": run_id,
        "error": error[:MAX_ERROR_CHARS],
        "failed_steps": failed_steps,
    }


def post_alert(url: str, alert: dict[str, Any], timeout_seconds: float) -> int:
    """POST `alert` as JSON to `url` (`user:password@` in it becomes basic auth); the HTTP
    status, or an `AlertDeliveryError` whose message names the receiver without its credentials
    or query."""
    headers = {"Content-Type": "application/json", "User-Agent": "huleedu-pipelines-alert"}
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise AlertDeliveryError(
            f"HULEEDU_ALERT_WEBHOOK_URL must be an http(s) URL, not {parts.scheme or 'none'}:"
        )
    target = url
    if parts.username is not None:  # urllib does not read `user:password@` itself
        credentials = f"{urllib.parse.unquote(parts.username)}:"
        credentials += urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        netloc = parts.netloc.rsplit("@", 1)[1]
        target = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(
        target, data=json.dumps(alert).encode("utf-8"), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        raise AlertDeliveryError(
            f"alert webhook {redact_url(url)} answered HTTP {error.code}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise AlertDeliveryError(
            f"alert webhook {redact_url(url)} unreachable ({type(reason).__name__}); check "
            "HULEEDU_ALERT_WEBHOOK_URL and the network"
        ) from None


def _root_message(error: Any) -> str:
    """The message of the error that started it (Dagster wraps a step's own exception)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(error.message).strip()


class AlertDeliveryError(RuntimeError):
    """The webhook refused the alert or could not be reached."""


def build_run_failure_alert_sensor(settings: Settings) -> dg.RunFailureSensorDefinition:
    """The run-failure sensor wired to the webhook settings (the URL stays out of the UI)."""
    url = settings.alert_webhook_url
    timeout = settings.alert_timeout_seconds

    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Logs every failed run (job, run id, error) and POSTs it as JSON to "
            "HULEEDU_ALERT_WEBHOOK_URL when that is set."
        ),
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        steps = context.get_step_failure_events()
        failed_steps = [event.step_key for event in steps if event.step_key]
        step_errors = [
            f"{event.step_key}: {_root_message(event.event_specific_data.error)}"
            for event in steps
            if event.event_specific_data is not None
            and getattr(event.event_specific_data, "error", None) is not None
        ]
        error = "\n".join(step_errors) or (context.failure_event.message or "run failed")
        alert = failure_alert(run.job_name, run.run_id, error, failed_steps)
        context.log.error(
            f"run {run.run_id} of {run.job_name} failed"
            + (f" in {', '.join(failed_steps)}" if failed_steps else "")
            + f": {alert['error']}"
        )
        if url is None:
            return
        try:
            status = post_alert(url, alert, timeout)
        except AlertDeliveryError as delivery:
            context.log.error(str(delivery))
            return
        context.log.info(f"alert for run {run.run_id} sent to {redact_url(url)} (HTTP {status})")

    return run_failure_alert_sensor


__all__ = [
    "AlertDeliveryError",
    "build_run_failure_alert_sensor",
    "failure_alert",
    "post_alert",
    "redact_url",
]
