"""What every route shares, held on `app.state.gateway`."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.requests import Request

from gateway.activity import Activity
from gateway.config import GatewayConfig
from gateway.httpmetrics import HttpMetrics
from gateway.upstream import Metadata, Upstream, caller_metadata


@dataclass
class Memory:
    """What the gateway has seen of its upstream since it started."""

    reached: bool = False
    serving: set[str] = field(default_factory=set)
    """Backends seen serving: one not serving after that is down, not still loading."""
    durations: OrderedDict[str, float] = field(default_factory=OrderedDict)
    """Audio seconds of finished durable jobs, by id."""


@dataclass
class Gateway:
    config: GatewayConfig
    upstream: Upstream
    metrics: HttpMetrics
    activity: Activity = field(default_factory=Activity)
    memory: Memory = field(default_factory=Memory)
    started: float = field(default_factory=time.time)


def gateway(request: Request) -> Gateway:
    state: Gateway = request.app.state.gateway
    return state


def metadata(request: Request) -> Metadata:
    """The caller's own credentials, passed on to the orchestrator."""
    return caller_metadata(request.headers.get("authorization"))
