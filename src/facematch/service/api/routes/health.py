"""Operational endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

* ``/healthz`` — the process is alive and its event loop answers. It checks
  nothing else, so an orchestrator never restarts a worker for a database
  outage it cannot fix.
* ``/readyz`` — this worker should receive traffic: every readiness check
  (models loaded, database reachable, not shutting down) passes within a short
  timeout. 200 ``{"status": "ready", "checks": {...}}`` or 503
  ``{"status": "not_ready", ...}`` naming the check that failed, as ``failed``
  or ``timed out`` only: the reason (a driver's error line can carry host
  names, users, paths) goes to the log, once per change, not to whoever asks.
* ``/metrics`` — Prometheus text exposition (see :mod:`facematch.service.runtime.metrics`),
  guarded by a :class:`MetricsAccess` (open, bearer secret, or off).

None of them needs a token or runs on the CPU work pool, so probes still
answer while the pool is saturated.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from facematch.service.api.deps import MetricsAccessDep, MetricsDep, ReadinessDep
from facematch.service.runtime.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"])

__all__ = ["router"]


# HEAD too: load balancers and uptime checkers often probe with it.
@router.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
async def readyz(readiness: ReadinessDep) -> JSONResponse:
    if readiness is None:
        return JSONResponse({"status": "not_ready", "checks": {"startup": "not finished"}}, 503)
    checks = await readiness.evaluate()
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, registry: MetricsDep, access: MetricsAccessDep) -> Response:
    if access is not None and not access.allows(request):
        # The same answer as for any unknown path: nothing to learn from probing it.
        raise StarletteHTTPException(404)
    # Reading the multiprocess files is file I/O; keep it off the event loop.
    body = await asyncio.to_thread(registry.expose)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
