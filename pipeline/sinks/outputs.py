"""Writing the files an answer leaves (endpoints/files.py's FileOutput): fetched when the answer gave a
URL, then written whole through OutputFiles (temp + fsync + rename, or one upload) before the row that
names them is committed, so a crash never leaves a row pointing at a file that is not there."""

from __future__ import annotations

from typing import Any

from pipeline.endpoints.base import Endpoint, Request
from pipeline.endpoints.files import FileOutput, WrittenFile
from pipeline.errors import APIStatusError
from pipeline.sinks.files import OutputFiles


async def write_files(endpoint: Endpoint, request: Request, results: list[dict[str, Any]],
                      files: OutputFiles) -> list[dict[str, Any]]:
    """The files `results` leave, written; the results with the endpoint's columns naming them."""
    written = await write_outputs(endpoint.outputs(request, results), files)
    return endpoint.with_files(request, results, written)


async def write_outputs(outputs: list[list[FileOutput]], files: OutputFiles) -> list[list[WrittenFile]]:
    """Each result's files, in order; what was written, per result."""
    return [[await _write(output, files) for output in per_result] for per_result in outputs]


async def _write(output: FileOutput, files: OutputFiles) -> WrittenFile:
    data = output.data if output.data is not None else await _download(output, files)
    relative = output.name(data)
    await files.save(relative, data)
    return WrittenFile.of(relative, data)


async def _download(output: FileOutput, files: OutputFiles) -> bytes:
    """The bytes behind an answer's URL. A 401/403/404 here means an expired or bad link, not a bad job:
    report it as a plain status error so the row fails and the run goes on."""
    try:
        return await files.download(output.url or "")
    except APIStatusError as error:
        raise APIStatusError(f"downloading {output.kind} {output.index} failed: {error.message}",
                             status=error.status, code=error.code or f"{output.kind}_download_failed",
                             request_id=error.request_id) from None
