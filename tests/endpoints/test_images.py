"""Images endpoint: request body, parsing both response formats, filter flags, file naming; no server."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from pipeline.emulator.png import png_bytes
from pipeline.endpoints.base import HttpResponse, Item, Request
from pipeline.endpoints.images import Images, image_filter_flags, image_path
from pipeline.errors import APIStatusError, InvalidResponseError, NotFoundError
from pipeline.sinks.files import OutputFiles
from pipeline.sinks.outputs import write_files
from pipeline.sources.base import Row
from pipeline.spec import parse_spec

ONE_ROW = Request("test", [Item(Row("a", {}, 1), None)])  # what parse needs of a request: one input

SAFE = {"filtered": False, "severity": "safe"}
PNG_A, PNG_B = png_bytes("a", 4, 4), png_bytes("b", 4, 4)


def make(tmp_path: Path, params: dict | None = None) -> Images:
    raw = {"name": "i", "endpoint": "images", "input": {"path": str(tmp_path), "prompt": "prompt"},
           "output": {"path": str(tmp_path / "out")}, "params": params or {}}
    return Images(parse_spec(raw, tmp_path / "job.toml", env={}))


def answer(body: dict) -> HttpResponse:
    return HttpResponse(200, {}, json.dumps(body).encode(), 0.1, "req-1")


def b64_item(data: bytes, **extra: object) -> dict:
    return {"b64_json": base64.b64encode(data).decode(), **extra}


def test_build(tmp_path: Path) -> None:
    images = make(tmp_path, {"n": 2, "size": "1024x1024", "quality": "hd", "style": "natural"})
    assert images.counts_tokens is False and images.writes_files is True
    request = images.build([images.prepare(Row("a", {"prompt": "a red fox"}, 1))])
    assert request.json == {"n": 2, "size": "1024x1024", "quality": "hd", "style": "natural", "prompt": "a red fox"}
    assert request.tokens == 0 and request.op == "images/generations"


def test_parse_b64_with_azure_filters(tmp_path: Path) -> None:
    images = make(tmp_path, {"n": 2})
    body = {"created": 1, "data": [
        b64_item(PNG_A, revised_prompt="A fox.", prompt_filter_results={"hate": SAFE, "jailbreak": {
            "filtered": False, "detected": False}}, content_filter_results={"violence": SAFE}),
        b64_item(PNG_B, revised_prompt="Another fox.", content_filter_results={
            "violence": {"filtered": True, "severity": "medium"}}),
    ]}
    (result,) = images.parse(ONE_ROW, answer(body))
    assert [(i.data, i.url) for i in result["_images"]] == [(PNG_A, None), (PNG_B, None)]
    assert result["revised_prompts"] == ["A fox.", "Another fox."]
    assert (result["content_filtered"], result["filter_categories"]) == (True, "violence")


def test_parse_url(tmp_path: Path) -> None:
    (result,) = make(tmp_path).parse(ONE_ROW, answer({"data": [{"url": "http://x/1.png?se=1"}]}))
    assert [(i.data, i.url) for i in result["_images"]] == [(None, "http://x/1.png?se=1")]
    assert result["revised_prompts"] == [None] and result["content_filtered"] is False


@pytest.mark.parametrize("body", [{}, {"data": []}, {"data": [{"b64_json": "***"}]}, {"data": [{"revised": 1}]}])
def test_parse_refuses_malformed_answers(tmp_path: Path, body: dict) -> None:
    with pytest.raises(InvalidResponseError):
        make(tmp_path).parse(ONE_ROW, answer(body))


def test_filter_flags_merge_detected_categories() -> None:
    entries: list[dict] = [{"prompt_filter_results": {"jailbreak": {"filtered": False, "detected": True}}},
               {"content_filter_results": {"hate": SAFE}}]
    assert image_filter_flags(entries) == (False, "jailbreak")


@pytest.mark.parametrize(("row_id", "index", "data", "path"), [
    ("img-1", None, PNG_A, "images/img-1.png"),
    ("img-1", 3, PNG_A, "images/img-1-3.png"),
    ("../../etc/passwd", None, PNG_A, "images/etc/passwd.png"),
    ("a/b", 0, b"\xff\xd8\xff\xe0JFIF", "images/a/b-0.jpg"),
    ("w", None, b"RIFF\x00\x00\x00\x00WEBPVP8 ", "images/w.webp"),
])
def test_image_path(row_id: str, index: int | None, data: bytes, path: str) -> None:
    assert image_path(row_id, index, data) == path


async def test_finish_saves_decoded_and_downloaded_images(tmp_path: Path) -> None:
    images = make(tmp_path, {"n": 2})
    request = images.build([images.prepare(Row("img-7", {"prompt": "p"}, 1))])
    results = images.parse(request, answer({"data": [b64_item(PNG_A), {"url": "http://x/b.png"}]}))
    fetched = []

    async def download(url: str) -> bytes:
        fetched.append(url)
        return PNG_B

    (result,) = await write_files(images, request, results, OutputFiles(tmp_path / "out", download))
    assert fetched == ["http://x/b.png"] and "_images" not in result
    assert result["paths"] == ["images/img-7-0.png", "images/img-7-1.png"]
    assert result["bytes"] == [len(PNG_A), len(PNG_B)]
    for relative, digest in zip(result["paths"], result["sha256"], strict=True):
        assert hashlib.sha256((tmp_path / "out" / relative).read_bytes()).hexdigest() == digest
    assert not list((tmp_path / "out").rglob("*.tmp"))


async def test_expired_url_fails_the_row_not_the_job(tmp_path: Path) -> None:
    images = make(tmp_path)
    request = images.build([images.prepare(Row("a", {"prompt": "p"}, 1))])
    results = images.parse(request, answer({"data": [{"url": "http://x/gone.png"}]}))

    async def download(url: str) -> bytes:
        raise NotFoundError("The specified blob does not exist.", status=404)

    with pytest.raises(APIStatusError) as caught:
        await write_files(images, request, results, OutputFiles(tmp_path / "out", download))
    assert type(caught.value) is APIStatusError  # not NotFoundError, which would abort the whole run
    assert caught.value.status == 404 and "downloading image 0 failed" in caught.value.message
