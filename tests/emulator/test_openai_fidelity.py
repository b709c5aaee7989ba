"""The official openai SDK parses every answer the emulator gives, on Azure and OpenAI routes."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator

import jsonschema
import numpy as np
import openai
import pytest
from openai import AsyncAzureOpenAI, AzureOpenAI, OpenAI
from openai.types.audio import TranscriptionDiarized
from openai.types.responses import Response
from pydantic import BaseModel

from pipeline.audio import samples
from pipeline.emulator import EmulatorConfig, EmulatorThread, embedding_vector
from pipeline.emulator.content import png_size
from pipeline.emulator.testing import data_url, fault_marker, make_wav, recording

API_VERSION = "2024-10-21"
RESPONSES_API_VERSION = "2025-04-01-preview"  # Azure's preview route /openai/responses needs one this recent
MESSAGES = [{"role": "user", "content": "Say something"}]
LONG_SYSTEM = "Keep to the facts the document states and nothing more. " * 150  # past 1024 tokens

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(EmulatorConfig(image_size_px=32, token_verifier=lambda token: token == "entra")) as running:
        yield running


@pytest.fixture
def azure(emulator: EmulatorThread) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=emulator.url, api_key="k", api_version=API_VERSION, max_retries=0)


@pytest.fixture
def oai(emulator: EmulatorThread) -> OpenAI:
    return OpenAI(base_url=emulator.url + "/v1", api_key="k", max_retries=0)


@pytest.fixture(params=["azure", "openai"])
def client(request: pytest.FixtureRequest, azure: AzureOpenAI, oai: OpenAI) -> OpenAI:
    return azure if request.param == "azure" else oai


@pytest.fixture(params=["azure-v1", "azure-preview", "openai"])
def responses_client(request: pytest.FixtureRequest, emulator: EmulatorThread, oai: OpenAI) -> OpenAI:
    """The three ways to the Responses API: Azure v1 (OpenAI client on /openai/v1/), Azure's preview route
    (AzureOpenAI with a recent api-version) and OpenAI's."""
    if request.param == "azure-v1":
        return OpenAI(base_url=emulator.url + "/openai/v1/", api_key="entra", max_retries=0)  # a bearer token
    if request.param == "azure-preview":
        return AzureOpenAI(azure_endpoint=emulator.url, api_key="k", api_version=RESPONSES_API_VERSION, max_retries=0)
    return oai


class Place(BaseModel):
    city: str
    population: int
    coastal: bool
    tags: list[str]


PLACE_SCHEMA = {**Place.model_json_schema(), "additionalProperties": False}


def test_embeddings_default_base64_is_decoded_by_the_sdk(client: OpenAI) -> None:
    answer = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert [d.index for d in answer.data] == [0, 1]
    assert np.array_equal(np.asarray(answer.data[1].embedding, dtype=np.float32), embedding_vector("beta", 1536))
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0


def test_embeddings_float_with_dimensions(client: OpenAI) -> None:
    answer = client.embeddings.create(
        model="text-embedding-3-large", input="gamma", encoding_format="float", dimensions=64
    )
    assert np.array_equal(np.asarray(answer.data[0].embedding, dtype=np.float32), embedding_vector("gamma", 64))


def test_chat(client: OpenAI) -> None:
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50, seed=1)
    choice = answer.choices[0]
    assert answer.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.message.content and choice.finish_reason in ("stop", "length")
    assert answer.usage is not None and answer.usage.completion_tokens <= 50


def test_chat_stream_with_usage(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text and finish == "stop"
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_legacy_completions(client: OpenAI) -> None:
    answer = client.completions.create(model="gpt-35-turbo-instruct", prompt="Once upon", max_tokens=10)
    assert answer.object == "text_completion" and answer.choices[0].text


def test_transcription_formats(client: OpenAI) -> None:
    audio = make_wav(3.0)
    plain = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio))
    assert plain.text
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio), response_format="text")
    assert isinstance(text, str) and text.strip() == plain.text
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=("a.wav", audio),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.duration == pytest.approx(3.0)
    assert verbose.words and verbose.segments
    assert verbose.words[-1].end <= verbose.duration


def test_diarized_json_is_parsed_as_transcription_diarized(client: OpenAI) -> None:
    talk = samples.Script((samples.Sentence(0.3, 1.9, samples.pitch_for(0, 1), 1),
                           samples.Sentence(2.5, 4.1, samples.pitch_for(0), 0)), 4.5)
    answer = client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize", response_format="diarized_json", chunking_strategy="auto",
        file=("talk.wav", recording(talk)),
    )
    assert isinstance(answer, TranscriptionDiarized)
    assert [s.speaker for s in answer.segments] == ["A", "B"] and answer.task == "transcribe"
    assert answer.text == " ".join(s.text for s in answer.segments) and answer.duration == pytest.approx(4.5)
    named = client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize", response_format="diarized_json", chunking_strategy="auto",
        file=("talk.wav", recording(talk)), known_speaker_names=["host"],
        known_speaker_references=[data_url(make_wav(3.0, pitch=samples.pitch_for(5, 1)))],
    )
    assert [s.speaker for s in named.segments] == ["host", "A"]


def test_gpt_4o_transcribe_json(client: OpenAI) -> None:
    answer = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", make_wav(2.0)))
    assert answer.text
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", make_wav(2.0)),
                                           response_format="verbose_json")
    assert refused.value.param == "response_format"


def test_translation(client: OpenAI) -> None:
    answer = client.audio.translations.create(model="whisper-1", file=("a.wav", make_wav(1.0)))
    assert answer.text


def test_images_b64_and_url(client: OpenAI) -> None:
    answer = client.images.generate(model="dall-e-3", prompt="a lighthouse", response_format="b64_json")
    assert png_size(base64.b64decode(answer.data[0].b64_json or "")) == (32, 32)
    assert answer.data[0].revised_prompt
    answer = client.images.generate(model="dall-e-3", prompt="a lighthouse", response_format="url")
    with urllib.request.urlopen(answer.data[0].url or "", timeout=5) as image:
        assert png_size(image.read()) == (32, 32)


def test_speech(client: OpenAI) -> None:
    answer = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there", response_format="wav")
    assert answer.content.startswith(b"RIFF")


def test_sdk_errors_map_to_its_exception_classes(azure: AzureOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as filtered:
        azure.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "BLOCKME"}])
    assert filtered.value.code == "content_filter"
    with pytest.raises(openai.RateLimitError) as limited:
        azure.embeddings.create(model="e", input=fault_marker("429"))
    assert limited.value.response.headers["retry-after-ms"] == "50"
    with pytest.raises(openai.InternalServerError):
        azure.embeddings.create(model="e", input=fault_marker("503"))


def test_sdk_retries_injected_faults_and_succeeds(emulator: EmulatorThread) -> None:
    client = AzureOpenAI(azure_endpoint=emulator.url, api_key="k", api_version=API_VERSION, max_retries=2)
    answer = client.embeddings.create(model="e", input=f"retry me {fault_marker('429', 2)}")
    assert answer.data


def test_entra_token_is_checked(emulator: EmulatorThread) -> None:
    good = AzureOpenAI(azure_endpoint=emulator.url, azure_ad_token_provider=lambda: "entra", api_version=API_VERSION)
    assert good.embeddings.create(model="e", input="x").data
    bad = AzureOpenAI(
        azure_endpoint=emulator.url, azure_ad_token_provider=lambda: "forged", api_version=API_VERSION, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="e", input="x")


async def test_async_azure_client(emulator: EmulatorThread) -> None:
    client = AsyncAzureOpenAI(azure_endpoint=emulator.url, api_key="k", api_version=API_VERSION)
    answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content
    await client.close()


def test_chat_json_schema_and_parse(client: OpenAI) -> None:
    answer = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Describe a place"}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "strict": True,
                                                                 "schema": PLACE_SCHEMA}},
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), PLACE_SCHEMA)
    parsed = client.chat.completions.parse(model="gpt-4o", messages=[{"role": "user", "content": "Describe it"}],
                                           response_format=Place)
    assert isinstance(parsed.choices[0].message.parsed, Place)
    refused = client.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": f"Describe {fault_marker('refusal', 'always')}"}],
        response_format=Place)
    assert refused.choices[0].message.refusal and refused.choices[0].message.parsed is None


def test_chat_usage_details_cached_and_reasoning(client: OpenAI) -> None:
    messages = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "one"}]
    client.chat.completions.create(model="o3-mini", messages=messages, reasoning_effort="high")
    messages[1]["content"] = "two"
    answer = client.chat.completions.create(model="o3-mini", messages=messages, reasoning_effort="high")
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    assert usage.prompt_tokens_details.cached_tokens and usage.prompt_tokens_details.cached_tokens % 128 == 0
    assert usage.completion_tokens_details.reasoning_tokens and usage.completion_tokens_details.reasoning_tokens > 0


def test_responses_create(responses_client: OpenAI) -> None:
    response = responses_client.responses.create(model="gpt-4o", input="Say something", instructions="Be brief.")
    assert isinstance(response, Response) and response.status == "completed" and response.output_text
    assert response.usage is not None and response.usage.total_tokens > response.usage.input_tokens
    Response.model_validate(response.model_dump())  # every field the SDK requires is there


def test_responses_stream(responses_client: OpenAI) -> None:
    events = list(responses_client.responses.create(model="o4-mini", input="Say something", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text and text == final.output_text and [item.type for item in final.output] == ["reasoning", "message"]
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens > 0


def test_responses_json_schema_and_parse(responses_client: OpenAI) -> None:
    response = responses_client.responses.create(
        model="gpt-4o", input="Describe a place",
        text={"format": {"type": "json_schema", "name": "place", "strict": True, "schema": PLACE_SCHEMA}})
    jsonschema.validate(json.loads(response.output_text), PLACE_SCHEMA)
    parsed = responses_client.responses.parse(model="gpt-4o", input="Describe another", text_format=Place)
    assert isinstance(parsed.output_parsed, Place)


def test_responses_incomplete(responses_client: OpenAI) -> None:
    response = responses_client.responses.create(model="gpt-4o", input="Say something", max_output_tokens=16)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens" and response.output_text


def test_responses_usage_details_cached_and_reasoning(responses_client: OpenAI) -> None:
    for question in ("first", "second"):
        response = responses_client.responses.create(model="gpt-5-mini", instructions=LONG_SYSTEM, input=question,
                                                     reasoning={"effort": "low"})
    usage = response.usage
    assert usage is not None and usage.input_tokens_details.cached_tokens >= 1024
    assert usage.output_tokens_details.reasoning_tokens > 0 and response.output[0].type == "reasoning"


def test_flex_tier_and_its_unavailable_error(client: OpenAI) -> None:
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, service_tier="flex")
    assert answer.service_tier == "flex"
    with pytest.raises(openai.RateLimitError) as busy:
        client.chat.completions.create(model="gpt-4o", service_tier="flex",
                                       messages=[{"role": "user", "content": fault_marker("flexbusy", "always")}])
    assert busy.value.code == "resource_unavailable"
