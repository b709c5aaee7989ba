"""A response as server-sent events, in the order and shape OpenAI streams the Responses API.

    response.created, response.in_progress                   (the response in progress, no output yet)
    per output item: response.output_item.added ... response.output_item.done
      a message's part: response.content_part.added, response.output_text.delta (one a word; a refusal:
      response.refusal.delta), response.output_text.done (response.refusal.done), response.content_part.done
    response.completed, or response.incomplete               (the finished response, usage included)

Each event is `event: <type>` and `data: {"type": <type>, "sequence_number": n, ...}`; no `[DONE]`.
Faults: `truncate` drops the connection halfway through the text (before the last event when there is no
text); `nofinish` ends the stream cleanly without its last event.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulator.exchange import Exchange
from pipeline.emulator.ops import sse
from pipeline.emulator.ops.responses_body import Reply, content_part, message_item, output_items, response_object


class _Events:
    """Numbers each event of one stream as it sends it."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.sequence = 0

    async def send(self, kind: str, **fields: Any) -> None:
        await sse.send_named(self.response, kind, {"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1


async def stream_response(x: Exchange, reply: Reply, fault: str | None = None) -> web.StreamResponse:
    response = await sse.open_stream(x)
    events = _Events(response)
    await events.send("response.created", response=response_object(reply, done=False))
    await events.send("response.in_progress", response=response_object(reply, done=False))
    for index, item in enumerate(output_items(reply)):
        if item["type"] != "message":
            await events.send("response.output_item.added", output_index=index, item=item)
            await events.send("response.output_item.done", output_index=index, item=item)
        elif not await _stream_message(x, events, reply, index):
            return sse.cut(x, response)
    if x.truncate:
        return sse.cut(x, response)
    if fault != "nofinish":
        last = "response.completed" if reply.status == "completed" else "response.incomplete"
        await events.send(last, response=response_object(reply, done=True))
    await response.write_eof()
    return response


async def _stream_message(x: Exchange, events: _Events, reply: Reply, index: int) -> bool:
    """The message item at `index`, word by word; False where a truncate fault cuts it halfway."""
    part = content_part(reply.answer)
    refusal = part["type"] == "refusal"
    kind, field = ("refusal", "refusal") if refusal else ("output_text", "text")
    whole = str(part[field])
    at = {"item_id": reply.message_id, "output_index": index, "content_index": 0}
    await events.send("response.output_item.added", output_index=index,
                      item=message_item(reply, "in_progress", []))
    await events.send("response.content_part.added", **at, part={**part, field: ""})
    pieces = _pieces(whole)
    for number, piece in enumerate(pieces):
        if x.truncate and number == len(pieces) // 2:
            return False
        await sse.pause(x)
        await events.send(f"response.{kind}.delta", **at, delta=piece, **({} if refusal else {"logprobs": []}))
    await events.send(f"response.{kind}.done", **at, **{field: whole}, **({} if refusal else {"logprobs": []}))
    await events.send("response.content_part.done", **at, part=part)
    await events.send("response.output_item.done", output_index=index, item=message_item(reply, reply.status, [part]))
    return True


def _pieces(text: str) -> list[str]:
    """The text as the deltas carry it: a word each, the space before it included."""
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]
