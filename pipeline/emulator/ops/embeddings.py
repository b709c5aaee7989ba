"""POST embeddings: float lists or base64 of little-endian float32, as the SDK expects."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from aiohttp import web

from pipeline.emulator.charges import embeddings_charge, input_items, item_tokens
from pipeline.emulator.content import default_dimensions, embedding_vector
from pipeline.emulator.exchange import Exchange, Operation, invalid
from pipeline.emulator.fault_answers import answer_fault, spoil_usage
from pipeline.emulator.ops.common import choice_field, json_answer, require

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
_INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."


def validate(x: Exchange) -> None:
    items = input_items(require(x, "input"))
    if not items or any(not _valid_item(item) for item in items):
        raise invalid(_INVALID_INPUT)
    if len(items) > MAX_INPUTS:
        raise _too_many(x, len(items))
    for item in items:
        tokens = item_tokens(item)
        if tokens > MAX_INPUT_TOKENS:
            raise invalid(
                f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested "
                f"{tokens} tokens ({tokens} in your prompt; 0 for the completion). "
                "Please reduce your prompt; or completion length.",
            )
    choice_field(x, "encoding_format", "float", ("float", "base64"))
    _validate_dimensions(x)


def _valid_item(item: Any) -> bool:
    if isinstance(item, str):
        return item != ""
    return isinstance(item, list) and bool(item) and all(isinstance(t, int) and t >= 0 for t in item)


def _too_many(x: Exchange, count: int) -> Exception:
    if x.azure:
        return invalid(
            f"Too many inputs. The max number of inputs is {MAX_INPUTS}. We hope to increase the number of "
            "inputs per request soon. Please contact us through an Azure support request at: "
            "https://go.microsoft.com/fwlink/?linkid=2213926 for further questions.",
        )
    return invalid(
        f"Invalid 'input': array too long. Expected an array with maximum length {MAX_INPUTS}, "
        f"but got an array with length {count} instead.",
        "input",
        "array_above_max_length",
    )


def _validate_dimensions(x: Exchange) -> None:
    dims = x.body.get("dimensions")
    if dims is None:
        return
    if "ada" in x.deployment.lower():
        raise invalid("This model does not support specifying dimensions.", "dimensions")
    native = default_dimensions(x.deployment)
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= native:
        raise invalid(
            f"Invalid 'dimensions': expected an integer between 1 and {native}, but got {dims!r} instead.",
            "dimensions",
            "invalid_value",
        )


def texts(x: Exchange) -> list[str]:
    return [item for item in input_items(x.body.get("input")) if isinstance(item, str)]


def item_key(item: Any) -> str:
    """The text a vector is seeded from; token arrays hash as their ids."""
    return item if isinstance(item, str) else "tokens:" + ",".join(map(str, item))


async def respond(x: Exchange) -> web.StreamResponse:
    items = input_items(x.body["input"])
    fault = answer_fault(x)
    dims = _dimensions(x, fault)
    as_base64 = x.body.get("encoding_format") == "base64"
    vectors = [embedding_vector(item_key(item), dims) for item in items]
    if fault == "nanvector":  # base64 carries the float32 bit patterns; a JSON list, bare NaN and Infinity
        spoiled = vectors[0].copy()
        spoiled[0], spoiled[-1] = np.nan, np.inf
        vectors[0] = spoiled
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(vector, as_base64)}
        for i, vector in enumerate(vectors)
    ]
    tokens = sum(item_tokens(item) for item in items)
    body = {
        "object": "list",
        "data": _spoiled(data, fault),
        "model": x.model,
        "usage": spoil_usage({"prompt_tokens": tokens, "total_tokens": tokens}, fault),
    }
    return json_answer(body)


def _dimensions(x: Exchange, fault: str | None) -> int:
    """The asked-for length; under `wrongdim`, what a server that ignores `dimensions` sends."""
    native = default_dimensions(x.deployment)
    asked = x.body.get("dimensions")
    if fault != "wrongdim":
        return asked or native
    return native if asked and asked != native else native // 2


def _spoiled(data: list[dict[str, Any]], fault: str | None) -> list[dict[str, Any]]:
    """`badindex`: the last entry repeats the first one's index (a single entry gets index 1);
    `fewervectors`: a gateway's answer with only the first vector (none for a single input)."""
    if fault == "badindex":
        data[-1]["index"] = 1 if len(data) == 1 else data[0]["index"]
    if fault == "fewervectors":
        return data[:1] if len(data) > 1 else []
    return data


def _encode(vector: np.ndarray, as_base64: bool) -> Any:
    if as_base64:
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


EMBEDDINGS = Operation(
    path="embeddings",
    azure_name="Embeddings_Create",
    respond=respond,
    validate=validate,
    texts=texts,
    charge=embeddings_charge,
    filter_style="prompt",
)
