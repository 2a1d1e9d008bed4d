"""`GET /v1/models`: the transcription models the orchestrator's transcribers serve, in
OpenAI's model-object shape, with `whisper-1` as an alias of the default one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from gateway.errors import ApiError
from gateway.state import gateway, metadata
from gateway.upstream import WHISPER_ALIAS, served_models

router = APIRouter(tags=["models"])


def _model(model_id: str, created: int, alias_of: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "whospoke",
    }
    if alias_of:
        entry["alias_of"] = alias_of
    return entry


async def _models(request: Request) -> list[dict[str, Any]]:
    state = gateway(request)
    status = await state.upstream.status(metadata(request))
    served = list(served_models(status))
    created = int(state.started)
    models = [_model(m, created) for m in served]
    if served:
        models.append(_model(WHISPER_ALIAS, created, alias_of=served[0]))
    return models


@router.get("/v1/models", summary="List the transcription models served")
async def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": await _models(request)}


@router.get("/v1/models/{model_id:path}", summary="One served model")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    for model in await _models(request):
        if model["id"] == model_id:
            return model
    raise ApiError(
        404, f"model: {model_id!r} is not served here", param="model", code="model_not_found"
    )
