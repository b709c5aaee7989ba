"""Spec parsing: every mistake is one SpecError naming the file and key."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import SpecError
from pipeline.spec import load_spec, parse_spec

BASE: dict = {
    "name": "t",
    "endpoint": "embeddings",
    "input": {"path": "corpus.jsonl", "text": "text"},
    "output": {"path": "out/t"},
    "service": {"provider": "emulator"},
    "limits": {"concurrency": 4},
    "params": {"dimensions": 64},
}


def to_toml(data: dict, table: str = "") -> str:
    """Enough TOML for these tests: scalars, lists and nested tables."""
    scalars = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [to_toml(v, f"{table}.{k}" if table else k) for k, v in data.items() if isinstance(v, dict)]
    head = [f"[{table}]"] if table else []
    return "\n".join(head + scalars + tables) + "\n"


def spec_text(**changes: dict) -> str:
    data = copy.deepcopy(BASE)
    for section, values in changes.items():
        if section == "top":
            data.update(values)
        else:
            data.setdefault(section, {}).update(values)
    return to_toml(data)


GOOD = spec_text()


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "text": "hello"}\n')
    spec = tmp_path / "job.toml"
    spec.write_text(text)
    return spec


def test_good_spec_parses(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD), env={})
    assert spec.endpoint == "embeddings"
    assert spec.limits.concurrency == 4
    assert spec.params == {"dimensions": 64}
    assert spec.input.path == tmp_path / "corpus.jsonl"


AZ = {"provider": "azure", "deployment": "d"}
BAD_CASES = [
    ({"limits": {"concurency": 4}}, "[limits] concurency: unknown key"),
    ({"limits": {"concurrency": -1}}, "[limits] concurrency: must be >= 1"),
    ({"limits": {"concurrency": "many"}}, "[limits] concurrency: expected an integer"),
    ({"limits": {"batch_size": 5000}}, "[limits] batch_size: at most 2048"),
    ({"limits": {"timeout_s": True}}, "[limits] timeout_s: expected a number"),
    ({"service": {"api_key": "sk-123"}}, "service.api_key: a literal secret"),
    ({"service": {"provider": "azur"}}, "[service] provider: must be one of"),
    ({"service": AZ}, "[service] base_url: required for azure"),
    ({"service": {**AZ, "base_url": "https://x.openai.azure.com"}}, "[service] api_version: required for azure"),
    ({"service": {**AZ, "base_url": "x.openai.azure.com", "api_version": "v"}}, "[service] base_url: not an http"),
    ({"service": {"base_url": "${NOT_SET_ANYWHERE}"}}, "service.base_url: environment variable NOT_SET_ANYWHERE"),
    ({"params": {"temperature": 3}}, "params.temperature: must be a number from 0 to 2"),
    ({"params": {"input": "x"}}, "params.input: is filled from the input rows"),
    ({"output": {"sidecars": ["txt"]}}, "[output] sidecars: sidecar files are written for transcription"),
    ({"service": {"emulator": {"error_rate": 2.0}}}, "[service.emulator] error_rate: a probability"),
    ({"input": {"text": None}}, "[input] text: required"),
    ({"top": {"extra": 1}}, "extra: unknown key"),
    ({"top": {"endpoint": "embed"}}, "endpoint: must be one of"),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_CASES)
def test_bad_specs_name_the_key(tmp_path: Path, changes: dict, expected: str) -> None:
    changes = copy.deepcopy(changes)
    if changes.get("input", {}).get("text", "") is None:
        text = spec_text().replace('text = "text"\n', "")
    else:
        text = spec_text(**changes)
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text), env={})
    message = str(info.value)
    assert expected in message
    assert str(tmp_path / "job.toml") in message
    assert "\n" not in message


def test_env_references_are_expanded(tmp_path: Path) -> None:
    text = spec_text(service={"base_url": "${EMU_URL}"})
    spec = load_spec(write(tmp_path, text), env={"EMU_URL": "http://127.0.0.1:9"})
    assert spec.service.base_url == "http://127.0.0.1:9"


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(write(tmp_path, "name = "), env={})


def test_fingerprint_follows_result_changing_fields(tmp_path: Path) -> None:
    a = load_spec(write(tmp_path, GOOD), env={})
    b = load_spec(write(tmp_path, spec_text(limits={"concurrency": 8})), env={})
    c = load_spec(write(tmp_path, spec_text(params={"dimensions": 128})), env={})
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "endpoint", "input", "output", "service", "limits", "params",
                                        "pricing", "other"]), toml_values, max_size=8))
def test_parsing_never_raises_anything_but_spec_error(raw: dict) -> None:
    with contextlib.suppress(SpecError):
        parse_spec(raw, Path("fuzz.toml"), env={})


def test_a_responses_job_takes_chats_input_mapping_and_batch_mode(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data.update(endpoint="responses", input={"path": "corpus.jsonl", "prompt": "text", "system": "Be brief."},
                params={"max_output_tokens": 64, "prompt": {"id": "pmpt_1"}})
    data["service"]["mode"] = "batch"
    spec = load_spec(write(tmp_path, to_toml(data)), env={})
    assert (spec.endpoint, spec.service.mode, spec.input.system) == ("responses", "batch", "Be brief.")
    assert spec.params == {"max_output_tokens": 64, "prompt": {"id": "pmpt_1"}}  # a stored prompt is a parameter
