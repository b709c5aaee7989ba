"""Image generation: one prompt per request, images saved as files beside the results.

One result row per input id; the per-image columns are lists in the answer's order, with one
entry per image even when n = 1, so the schema never depends on n:
    paths            list<string>  relative to the output folder: images/<id>.png, or images/<id>-<i>.png
                                   (i from 0) when n > 1
    bytes            list<int64>   file sizes
    sha256           list<string>  hex digests of the files
    revised_prompts  list<string>  the prompt the service actually used (dall-e-3, gpt-image)
    content_filtered bool          any prompt or image filter result marked filtered
    filter_categories string       comma-separated categories flagged on any image

A prompt the safety system refuses comes back as 400 content_policy_violation: the transport
raises ContentFilterError and the row goes to failures with that reason, never retried.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

import pyarrow as pa

from pipeline.endpoints.base import Endpoint, HttpResponse, Item, Request, filter_flags, prompt_text
from pipeline.endpoints.files import FileOutput, Usage, WrittenFile, safe_relative
from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row

IMAGE_DIR = "images"
PENDING_KEY = "_images"  # the answer's images (bytes or URLs) as FileOutputs, from parse to outputs(); never a column
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"))


class Images(Endpoint):
    kind = "images"
    op = "images/generations"
    counts_tokens = False  # image quotas are requests per minute; the emulator charges no tokens either
    writes_files = True

    def prepare(self, row: Row) -> Item:
        return Item(row, prompt_text(row, self.spec), tokens=0)

    def build(self, batch: list[Item]) -> Request:
        (item,) = batch
        return Request(self.op, batch, json={**self.params, "prompt": item.payload}, tokens=0)

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        data = response.json()
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise InvalidResponseError("the answer holds no images", request_id=response.request_id)
        filtered, categories = image_filter_flags(entries)
        (item,) = request.items
        several = len(entries) > 1
        return [{
            PENDING_KEY: [pending_image(entry, response, item.row.id, index, several)
                          for index, entry in enumerate(entries)],
            "revised_prompts": [entry.get("revised_prompt") for entry in entries],
            "content_filtered": filtered,
            "filter_categories": categories,
        }]

    def result_fields(self) -> list[pa.Field]:
        return [
            pa.field("paths", pa.list_(pa.string())),
            pa.field("bytes", pa.list_(pa.int64())),
            pa.field("sha256", pa.list_(pa.string())),
            pa.field("revised_prompts", pa.list_(pa.string())),
            pa.field("content_filtered", pa.bool_()),
            pa.field("filter_categories", pa.string()),
        ]

    def usage(self, results: list[dict[str, Any]]) -> Usage:
        return Usage(images=sum(len(result.get("revised_prompts") or ()) for result in results))

    def outputs(self, request: Request, results: list[dict[str, Any]]) -> list[list[FileOutput]]:
        """Every image, fetched when the answer gave a URL and written whole before the row is committed."""
        return [result.pop(PENDING_KEY) for result in results]

    def with_files(self, request: Request, results: list[dict[str, Any]],
                   written: list[list[WrittenFile]]) -> list[dict[str, Any]]:
        for result, files in zip(results, written, strict=True):
            result.update(paths=[f.relative for f in files], bytes=[f.size for f in files],
                          sha256=[f.sha256 for f in files])
        return results


def pending_image(entry: dict[str, Any], response: HttpResponse, row_id: str, index: int,
                  several: bool) -> FileOutput:
    """One image of an answer: its bytes (b64_json) or the URL to fetch them from, and its file name."""
    encoded, url = entry.get("b64_json"), entry.get("url")
    name = functools.partial(image_path, row_id, index if several else None)
    if isinstance(encoded, str):
        try:
            return FileOutput(name, base64.b64decode(encoded, validate=True), kind="image", index=index)
        except (binascii.Error, ValueError):
            raise InvalidResponseError("an image is not valid base64", request_id=response.request_id) from None
    if isinstance(url, str) and url:
        return FileOutput(name, url=url, kind="image", index=index)
    raise InvalidResponseError("an image has neither b64_json nor url", request_id=response.request_id)


def image_filter_flags(entries: list[dict[str, Any]]) -> tuple[bool, str | None]:
    """Azure's per-image prompt and content filter results, merged over all images."""
    filtered, flagged = False, []
    for entry in entries:
        for results in (entry.get("prompt_filter_results"), entry.get("content_filter_results")):
            hit, categories = filter_flags(results)
            filtered = filtered or hit
            flagged += (categories or "").split(",")
    names = [name for name in dict.fromkeys(flagged) if name]
    return filtered, ",".join(names) or None


def image_path(row_id: str, index: int | None, data: bytes) -> str:
    """images/<safe id>[-<index>].<ext>; the extension follows the bytes (png unless they say jpeg/webp)."""
    extension = next((ext for magic, ext in _SIGNATURES if data.startswith(magic)), None)
    if extension is None:
        extension = "webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else "png"
    suffix = "" if index is None else f"-{index}"
    return f"{IMAGE_DIR}/{safe_relative(row_id)}{suffix}.{extension}"
