"""The pieces of chunked sending that need no server: CPU slots by priority, how much shorter a refused
chunk is cut, the clips sent as known-speaker references, speaker labels across chunks."""

from __future__ import annotations

import asyncio

from pipeline.errors import APIStatusError, BadRequestError, NotFoundError
from pipeline.online.recordings import AHEAD, NOW, PrioritySlots, Speakers, chunk_name, shorter_chunk_s, speaker_clips


async def test_first_chunks_are_served_before_work_for_later_requests() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []

    async def work(name: str, priority: int) -> None:
        await slots.acquire(priority)
        order.append(name)
        await asyncio.sleep(0.01)
        slots.release()

    await slots.acquire(NOW)  # busy: everyone below queues
    tasks = [asyncio.create_task(work(name, priority)) for name, priority in
             [("ahead-1", AHEAD), ("ahead-2", AHEAD), ("first-1", NOW), ("first-2", NOW)]]
    await asyncio.sleep(0.01)
    slots.release()
    await asyncio.gather(*tasks)
    assert order == ["first-1", "first-2", "ahead-1", "ahead-2"]


async def test_a_cancelled_waiter_does_not_lose_a_slot() -> None:
    slots = PrioritySlots(1)
    await slots.acquire(NOW)
    waiting = asyncio.create_task(slots.acquire(AHEAD))
    await asyncio.sleep(0)
    waiting.cancel()
    slots.release()
    await asyncio.gather(waiting, return_exceptions=True)
    await asyncio.wait_for(slots.acquire(NOW), 1)  # the slot is still there


def test_refused_chunks_are_cut_to_what_the_service_names() -> None:
    too_long = BadRequestError("audio duration 1830.5 seconds is longer than 1400 seconds which is the maximum "
                               "for this model", status=400)
    assert shorter_chunk_s(too_long, 1830.5, 1) == 1380
    too_large = APIStatusError("Maximum content size limit (26214400) exceeded (30000000 bytes read)", status=413)
    assert abs(shorter_chunk_s(too_large, 1000.0, 30_000_000) - 1000 * 0.9 * 26214400 / 30_000_000) < 1e-6
    assert shorter_chunk_s(APIStatusError("too big", status=413), 100.0, 5) == 50.0
    assert shorter_chunk_s(BadRequestError("Invalid file format", status=400), 100.0, 5) is None
    assert shorter_chunk_s(NotFoundError("no such deployment", status=404), 100.0, 5) is None


def test_speaker_references_are_each_speakers_longest_segment_cut_to_8_s() -> None:
    segments = [{"start": 0.0, "end": 1.5, "speaker": "A"}, {"start": 2.0, "end": 14.0, "speaker": "A"},
                {"start": 15.0, "end": 18.0, "speaker": "B"}, {"start": 19.0, "end": 20.0, "speaker": "C"}]
    assert speaker_clips(segments, {"A": "A", "B": "D", "C": "C"}) == {"A": (2.0, 10.0), "D": (15.0, 18.0)}


def test_labels_the_service_knows_keep_their_names_and_new_ones_get_fresh_letters() -> None:
    speakers = Speakers()
    first = speakers.map_chunk({"segments": [{"speaker": "A"}, {"speaker": "B"}, {"speaker": "A"}]})
    assert first == {"A": "A", "B": "B"}
    speakers.references += [("A", "data:a"), ("B", "data:b")]
    # the next chunk was sent with references A and B; the service names a third voice "C"
    assert speakers.map_chunk({"segments": [{"speaker": "B"}, {"speaker": "C"}]}) == {"B": "B", "C": "C"}
    assert speakers.map_chunk({"segments": [{"speaker": "X"}]}) == {"X": "D"}
    assert chunk_name("talks/keynote.wav", 16_000 * 75) == "keynote.000075.0s.ogg"
