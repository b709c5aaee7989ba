"""The emulator as an aiohttp application: Azure and OpenAI routes plus admin routes."""

from __future__ import annotations

from aiohttp import web

from pipeline.emulator import admin, batches, bodies
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.exchange import AZURE, AZURE_V1, OPENAI
from pipeline.emulator.flow import CONFIG, STATE, api_handler
from pipeline.emulator.headers import add_headers
from pipeline.emulator.ops import OPERATIONS
from pipeline.emulator.ops.images import IMAGE_ROUTE
from pipeline.emulator.state import EmulatorState

# Big enough for 2048 long embedding inputs; audio uploads are streamed and limited separately.
MAX_JSON_BODY = 128 * 1024 * 1024


def build_app(config: EmulatorConfig, state: EmulatorState | None = None) -> web.Application:
    """An application answering like Azure OpenAI (and OpenAI on /v1)."""
    app = web.Application(client_max_size=MAX_JSON_BODY)
    app[CONFIG] = config
    app[STATE] = state if state is not None else EmulatorState(seed=config.seed)
    app.on_response_prepare.append(add_headers)
    batches.add_routes(app)  # before the online routes: /v1/{op} would take POST /v1/files
    router = app.router
    router.add_post("/openai/deployments/{deployment}/{op:.+}", api_handler(AZURE))
    # Operations without a deployment segment (Responses) on Azure's api-version routes: /openai/{op}?api-version=
    unclassic = "|".join(op.path for op in OPERATIONS.values() if not op.classic)
    if unclassic:
        router.add_post(f"/openai/{{op:{unclassic}}}", api_handler(AZURE))
    router.add_post("/openai/v1/{op:.+}", api_handler(AZURE_V1))
    router.add_post("/v1/{op:.+}", api_handler(OPENAI))
    router.add_get(IMAGE_ROUTE, admin.get_image)
    router.add_get("/_emulator/stats", admin.get_stats)
    router.add_get("/_emulator/config", admin.get_config)
    router.add_post("/_emulator/config", admin.post_config)
    router.add_post("/_emulator/reset", admin.post_reset)
    router.add_route("*", "/{tail:.*}", _not_found)
    return app


async def _not_found(request: web.Request) -> web.Response:
    """Azure's answer to any other path or method."""
    return web.json_response(bodies.resource_not_found(True, request.method, request.path), status=404)
