"""POST images/generations: PNGs as b64_json, or as URLs served by the emulator itself."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import web

from pipeline.emulator import filters
from pipeline.emulator.content import png_bytes
from pipeline.emulator.exchange import Exchange, Operation, invalid
from pipeline.emulator.ops.common import choice_field, created, int_field, json_answer, require, string_limit

IMAGE_ROUTE = "/_emulator/images/{name}"
URL_LIFETIME_S = 3600  # Azure's image URLs stay valid for 60 minutes

# Per model family: allowed sizes, prompt length limit, most images per request.
_FAMILIES: dict[str, tuple[tuple[str, ...], int, int]] = {
    "dall-e-3": (("1024x1024", "1792x1024", "1024x1792"), 4000, 1),
    "dall-e-2": (("256x256", "512x512", "1024x1024"), 1000, 10),
    "gpt-image": (("1024x1024", "1536x1024", "1024x1536", "auto"), 32000, 10),
}


def family(name: str) -> str | None:
    """The model family a deployment or model name belongs to (None: unknown, lenient)."""
    lowered = name.lower().replace("dalle", "dall-e")
    return next((f for f in _FAMILIES if f in lowered), None)


def validate(x: Exchange) -> None:
    prompt = require(x, "prompt")
    kind = family(x.deployment)
    sizes, prompt_limit, most = _FAMILIES.get(kind or "", ((), 32000, 10))
    string_limit(x, "prompt", str(prompt), prompt_limit)
    if kind == "dall-e-3" and x.body.get("n", 1) != 1:
        raise invalid("You must provide n=1 for this model.", "n")
    int_field(x, "n", 1, 1, most)
    if sizes:
        choice_field(x, "size", "1024x1024", sizes)
    else:
        _parse_size(x)
    choice_field(x, "response_format", "url", ("url", "b64_json"))


def _parse_size(x: Exchange) -> tuple[int, int]:
    size = str(x.body.get("size") or "1024x1024")
    if size == "auto":
        return 1024, 1024
    try:
        width, height = (int(part) for part in size.split("x"))
    except ValueError:
        raise invalid(
            f"Invalid value: '{size}'. Expected a size such as '1024x1024'.", "size", "invalid_value"
        ) from None
    if not (1 <= width <= 4096 and 1 <= height <= 4096):
        raise invalid(f"Invalid value: '{size}'. Width and height must be within 1..4096.", "size", "invalid_value")
    return width, height


def texts(x: Exchange) -> list[str]:
    prompt = x.body.get("prompt")
    return [prompt] if isinstance(prompt, str) else []


async def respond(x: Exchange) -> web.StreamResponse:
    width, height = _parse_size(x)
    if x.config.image_size_px:
        width = height = x.config.image_size_px
    kind = family(x.deployment)
    as_url = x.body.get("response_format", "url") == "url" and kind != "gpt-image"
    data = []
    for index in range(x.body.get("n") or 1):
        image = png_bytes(f"{x.body['prompt']}#{index}", width, height)
        data.append(_item(x, image, as_url, kind))
    body: dict[str, Any] = {"created": created(), "data": data}
    if kind == "gpt-image":
        tokens = len(str(x.body["prompt"])) // 4 + 1
        body["usage"] = {
            "input_tokens": tokens,
            "output_tokens": 1056 * len(data),
            "total_tokens": tokens + 1056 * len(data),
            "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0},
        }
    return json_answer(body)


def _item(x: Exchange, image: bytes, as_url: bool, kind: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if as_url:
        item["url"] = _store(x, image)
    else:
        item["b64_json"] = base64.b64encode(image).decode("ascii")
    if kind != "dall-e-2":
        item["revised_prompt"] = f"A detailed, vivid rendering of: {x.body['prompt']}"
    if x.azure:
        item["prompt_filter_results"] = filters.image_prompt_results()
        item["content_filter_results"] = filters.safe_results()
    return item


def _store(x: Exchange, image: bytes) -> str:
    """Keep the image and return an absolute URL, with Azure-like SAS-style query parameters."""
    name = f"{uuid.uuid4().hex}.png"
    x.state.images.put(name, image)
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + URL_LIFETIME_S))
    path = IMAGE_ROUTE.format(name=name)
    return f"{x.base_url}{path}?se={quote(expiry)}&sig={uuid.uuid4().hex}"


IMAGES = Operation(
    path="images/generations",
    azure_name="ImageGenerations_Create",
    respond=respond,
    validate=validate,
    texts=texts,
    filter_style="image",
)
