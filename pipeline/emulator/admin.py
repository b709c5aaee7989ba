"""The emulator's own routes: stats, runtime config, reset, generated images."""

from __future__ import annotations

import json

from aiohttp import web

from pipeline.emulator.config import apply_updates, public_view
from pipeline.emulator.flow import CONFIG, STATE


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].snapshot())


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(public_view(request.app[CONFIG]))


async def post_config(request: web.Request) -> web.Response:
    """Update config fields from a JSON object; all or nothing, 400 naming the bad field."""
    config, state = request.app[CONFIG], request.app[STATE]
    try:
        updates = json.loads(await request.read() or b"{}")
        if not isinstance(updates, dict):
            raise ValueError("expected a JSON object of config fields")
        apply_updates(config, updates)
    except ValueError as error:
        return web.json_response({"error": {"message": str(error)}}, status=400)
    if "seed" in updates:
        state.faults.reset(config.seed)
    return web.json_response(public_view(config))


async def post_reset(request: web.Request) -> web.Response:
    """Forget stats, quota windows, fault counters and images (the config stays)."""
    request.app[STATE].reset(request.app[CONFIG].seed)
    return web.json_response({"reset": True})


async def get_image(request: web.Request) -> web.Response:
    image = request.app[STATE].images.get(request.match_info["name"])
    if image is None:
        return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)
    return web.Response(body=image, content_type="image/png")
