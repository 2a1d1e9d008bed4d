"""What every route shares, held on `app.state.gateway`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import Request

from gateway.activity import Activity
from gateway.config import GatewayConfig
from gateway.httpmetrics import HttpMetrics
from gateway.upstream import Metadata, Upstream, caller_metadata


@dataclass
class Gateway:
    config: GatewayConfig
    upstream: Upstream
    metrics: HttpMetrics
    activity: Activity = field(default_factory=Activity)
    started: float = field(default_factory=time.time)


def gateway(request: Request) -> Gateway:
    state: Gateway = request.app.state.gateway
    return state


def metadata(request: Request) -> Metadata:
    """The caller's own credentials, passed on to the orchestrator."""
    return caller_metadata(request.headers.get("authorization"))
