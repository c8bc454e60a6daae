"""The scoring API: `create_app(settings)` builds the FastAPI app.

Endpoints: `POST /v1/score`, `POST /v1/score/batch`, `GET /v1/models`, `GET /healthz`,
`GET /readyz`, `GET /metrics`; the OpenAPI schema at `/openapi.json` (and `/docs`).

Every response carries `X-Request-ID`; errors are JSON (`detail`, and `errors` naming each bad
field with a code), never a traceback: 422 for a malformed essay, 413 for an essay longer than
the limit or a batch larger than it, 503 while the models are not loaded, 500 with only the
request id (the log has the rest).
"""

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import make_url
from starlette.exceptions import HTTPException as StarletteHTTPException

from huleedu_pipelines.modeling.names import CEFR_MODEL, CHAMPION, GRADE_MODEL
from huleedu_pipelines.registry import ModelRegistry, build_registry
from huleedu_pipelines.services.online_scoring import (
    EssayInput,
    InputError,
    OnlineFeatures,
    ScoredRequest,
    canary_alias,
    score_request,
)
from huleedu_pipelines.serving.batch_metrics import register_nightly_collector
from huleedu_pipelines.serving.holder import ModelHolder, ModelSnapshot
from huleedu_pipelines.serving.logs import REQUEST_ID_HEADER, new_request_id, request_id_var
from huleedu_pipelines.serving.metrics import CONTENT_TYPE, NO_VERSION, ServingMetrics
from huleedu_pipelines.serving.schemas import (
    BatchIn,
    BatchOut,
    ErrorOut,
    EssayIn,
    EssayScore,
    ModelsOut,
)
from huleedu_pipelines.settings import Settings, get_settings
from huleedu_pipelines.warehouse.engine import cached_engine

log = logging.getLogger("huleedu_pipelines.serving")

ENDPOINTS = ("/v1/score", "/v1/score/batch", "/v1/models", "/healthz", "/readyz", "/metrics")
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "An essay or the batch is larger than the limit."},
    422: {"model": ErrorOut, "description": "A field is missing or malformed (named)."},
    503: {"model": ErrorOut, "description": "The models are not loaded yet."},
}


class ApiError(Exception):
    def __init__(self, status: int, detail: str, errors: Sequence[dict[str, str]] = ()) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, list(errors)


def _error_response(
    status: int, detail: str, errors: Sequence[dict[str, str]] = ()
) -> JSONResponse:
    body = ErrorOut(detail=detail, errors=list(errors), request_id=request_id_var.get())
    return JSONResponse(body.model_dump(), status_code=status)


def _status_of(error: InputError) -> int:
    return 413 if error.too_large else 422


def _field_error(error: InputError, prefix: str = "") -> dict[str, str]:
    return {"field": f"{prefix}{error.field}", "code": error.rule, "message": error.detail}


class Service:
    """What the endpoints share: settings, the model holder, features and metrics."""

    def __init__(
        self,
        settings: Settings,
        registry: Callable[[], ModelRegistry] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        self.nightly = register_nightly_collector(self.metrics.registry, settings)  # batch figures
        engine = cached_engine(settings.resolved_warehouse_url)
        self.features = OnlineFeatures(
            settings.feature_cache_dir,
            settings.embedder(),
            max_entries=settings.serve_feature_cache_entries,
            engine=engine,
            max_essay_chars=settings.max_essay_chars,
        )
        self.holder = ModelHolder(
            registry or (lambda: build_registry(settings)),
            engine,
            feature_version=self.features.version,
            interval=settings.serve_reload_seconds,
            metrics=self.metrics,
            before_first_load=self.features.warm_up,
            load_challengers=settings.serve_canary_share > 0,
        )
        self.max_chars = min(settings.serve_max_text_chars, settings.max_essay_chars)
        # A body larger than the largest batch of the largest essays (4 bytes a character in
        # UTF-8 at most, the prompt as long again) is refused before it is read.
        self.max_body_bytes = settings.serve_max_batch * (8 * self.max_chars + 1024) + 65536

    def snapshot(self) -> ModelSnapshot:
        snapshot = self.holder.snapshot
        if not self.holder.ready or snapshot is None:
            raise ApiError(503, "the models are not loaded yet; see GET /readyz and GET /v1/models")
        return snapshot

    def score(self, essays: Sequence[EssayIn], endpoint: str, request: Request):
        """Score `essays` with one snapshot; each essay goes to the champions, or (a canary
        share of students) to the challengers that differ from them."""
        snapshot = self.snapshot()
        inputs = [EssayInput(e.text, e.prompt, e.essay_id, e.student_id) for e in essays]
        share = self.settings.serve_canary_share if snapshot.models.challengers else 0.0
        aliases = [canary_alias(essay, share) for essay in inputs]
        # A single essay's request is labelled by the models that scored it; a batch by the
        # champions' (its essays' own are counted per essay).
        alias = aliases[0] if len(aliases) == 1 else CHAMPION
        request.state.model_version = snapshot.version_of(GRADE_MODEL, alias)
        request.state.alias = alias
        scored = score_request(
            inputs,
            self.features,
            snapshot.models,
            aliases=aliases,
            max_chars=self.max_chars,
            review_threshold=self.settings.review_confidence_threshold,
            explain_scope=self.settings.serve_explain_scope,
            n_jobs=1,
        )
        self._observe(scored, endpoint, snapshot, aliases)
        return scored

    def _observe(
        self,
        scored: ScoredRequest,
        endpoint: str,
        snapshot: ModelSnapshot,
        aliases: Sequence[str],
    ) -> None:
        m = self.metrics
        counts = scored.counts
        if counts.memory_hits:
            m.cache_hits.labels("memory").inc(counts.memory_hits)
        if counts.disk_hits:
            m.cache_hits.labels("disk").inc(counts.disk_hits)
        if counts.computed:
            m.cache_misses.inc(counts.computed)
        if scored.feature_seconds:
            m.stage.labels("features").observe(scored.feature_seconds)
        if scored.model_seconds:
            m.stage.labels("models").observe(scored.model_seconds)
        for result, alias in zip(scored.results, aliases, strict=True):
            if isinstance(result, InputError):
                m.essays.labels(endpoint, alias, result.rule).inc()
                continue
            m.essays.labels(endpoint, alias, "scored").inc()
            row = result["grade_row"]
            if row is None:
                continue
            grade_version = snapshot.version_of(GRADE_MODEL, alias)
            if row["grade"] is not None:
                m.grades.labels(row["grade"], grade_version, alias).inc()
            if row["cefr"] is not None:
                m.cefr.labels(row["cefr"], snapshot.version_of(CEFR_MODEL, alias), alias).inc()
            if row["needs_review"]:
                m.needs_review.labels(grade_version, alias).inc()


def render(result: dict[str, Any]) -> dict[str, Any]:
    """A scored essay as `EssayScore`: its grade row and skill rows as the warehouse has them,
    the models (name, version, alias) that made them and the alias it was routed to."""
    grade = result["grade_row"]
    if grade is None:
        grade = {
            "needs_review": True,
            "review_reasons": "no grade row: the grade, CEFR and band models do not serve "
            "(see GET /v1/models)",
        }
    return {
        "essay_id": result["essay_id"],
        "student_id": result["student_id"],
        "grade": grade.get("grade"),
        "grade_probabilities": grade.get("grade_probabilities"),
        "confidence": grade.get("confidence"),
        "cefr": grade.get("cefr"),
        "cefr_probabilities": grade.get("cefr_probabilities"),
        "ielts_band": grade.get("ielts_band"),
        "needs_review": bool(grade["needs_review"]),
        "review_reasons": grade.get("review_reasons"),
        "skills": [
            {
                "skill": row["skill"],
                "score": row["score"],
                "confidence": row["confidence"],
                "top_features": row["top_features"],
                "model_name": row["model_name"],
                "model_version": row["model_version"],
            }
            for row in result["skill_rows"]
        ],
        "models": result["models"],
        "model_alias": result["alias"],
        "feature_version": result["feature_version"],
        "feature_hash": result["feature_hash"],
    }


def create_app(
    settings: Settings | None = None,
    *,
    registry: Callable[[], ModelRegistry] | None = None,
) -> FastAPI:
    """The scoring API on `settings` (read from the environment when None). The models load
    in a background thread at startup; `/readyz` says when they serve."""
    settings = settings or get_settings()
    service = Service(settings, registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        service.holder.start()
        log.info(
            "scoring API starting",
            extra={
                "event": "startup",
                "warehouse": make_url(settings.resolved_warehouse_url).render_as_string(
                    hide_password=True
                ),
                "reload_seconds": settings.serve_reload_seconds,
            },
        )
        yield
        service.holder.stop()

    app = FastAPI(
        title="HuleEdu scoring API",
        version="1",
        description="Scores essays with the champion models, through the nightly job's "
        "features and scoring code.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.middleware("http")
    async def observe(request: Request, call_next):
        request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        path = request.url.path
        endpoint = path if path in ENDPOINTS else "other"
        try:
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > service.max_body_bytes:
                response = _error_response(
                    413,
                    f"the request body has {int(length):,} bytes, more than the limit of "
                    f"{service.max_body_bytes:,}",
                )
            else:
                response = await call_next(request)
        except Exception:
            log.exception("unhandled error", extra={"event": "error", "path": path})
            response = _error_response(500, "internal error; quote the request id to support")
        seconds = time.perf_counter() - started
        version = getattr(request.state, "model_version", NO_VERSION)
        alias = getattr(request.state, "alias", CHAMPION)
        if endpoint != "/metrics":
            status = str(response.status_code)
            service.metrics.requests.labels(endpoint, status, version, alias).inc()
            service.metrics.latency.labels(endpoint, version, alias).observe(seconds)
        response.headers[REQUEST_ID_HEADER] = request_id
        if endpoint not in ("/metrics", "/healthz", "/readyz"):
            log.info(
                f"{request.method} {path} {response.status_code}",
                extra={
                    "event": "request",
                    "method": request.method,
                    "path": path,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 2),
                    "model_version": version,
                    "alias": alias,
                },
            )
        request_id_var.reset(token)
        return response

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError):
        return _error_response(error.status, error.detail, error.errors)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError):
        errors = []
        for item in error.errors():
            location = [str(part) for part in item.get("loc", ()) if part != "body"]
            errors.append(
                {
                    "field": ".".join(location) or "body",
                    "code": str(item.get("type", "invalid")),
                    "message": str(item.get("msg", "invalid value")),
                }
            )
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return _error_response(422, f"invalid request: {fields}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException):
        return _error_response(error.status_code, str(error.detail))

    @app.post(
        "/v1/score",
        response_model=EssayScore,
        responses=ERROR_RESPONSES,
        summary="Score one essay",
    )
    def score_one(body: EssayIn, request: Request) -> dict[str, Any]:
        scored = service.score([body], "/v1/score", request)
        result = scored.results[0]
        if isinstance(result, InputError):
            raise ApiError(
                _status_of(result), f"essay not scored: {result.detail}", [_field_error(result)]
            )
        return render(result)

    @app.post(
        "/v1/score/batch",
        response_model=BatchOut,
        responses=ERROR_RESPONSES,
        summary="Score a batch of essays together",
    )
    def score_batch(body: BatchIn, request: Request) -> dict[str, Any]:
        limit = settings.serve_max_batch
        if len(body.essays) > limit:
            raise ApiError(
                413,
                f"the batch has {len(body.essays)} essays, more than the limit of {limit} "
                "(HULEEDU_SERVE_MAX_BATCH); send it in parts",
                [{"field": "essays", "code": "batch_too_large", "message": f"at most {limit}"}],
            )
        if not body.essays:
            raise ApiError(
                422,
                "the batch has no essays",
                [{"field": "essays", "code": "too_short", "message": "at least one essay"}],
            )
        scored = service.score(body.essays, "/v1/score/batch", request)
        items = []
        for index, (essay, result) in enumerate(zip(body.essays, scored.results, strict=True)):
            if isinstance(result, InputError):
                error = _field_error(result, f"essays.{index}.")
                items.append(
                    {
                        "index": index,
                        "essay_id": essay.essay_id,
                        "result": None,
                        "error": {"status": _status_of(result), **error},
                    }
                )
            else:
                items.append(
                    {
                        "index": index,
                        "essay_id": essay.essay_id,
                        "result": render(result),
                        "error": None,
                    }
                )
        failed = sum(1 for item in items if item["error"] is not None)
        return {"scored": len(items) - failed, "failed": failed, "results": items}

    @app.get("/v1/models", response_model=ModelsOut, summary="The models serving now")
    def models() -> dict[str, Any]:
        return service.holder.describe()

    @app.get("/healthz", summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Models are loaded and verified", responses={503: {}})
    def readyz():
        holder = service.holder
        snapshot = holder.snapshot
        if holder.ready and snapshot is not None:
            return {"ready": True, "models": snapshot.versions()}
        reason = holder.status.last_error or (
            "warming up" if not holder.warm else "no champion model is loaded"
        )
        body = {"ready": False, "reason": reason}
        return JSONResponse(jsonable_encoder(body), status_code=503)

    @app.get("/metrics", summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    return app
