"""Legacy completions runs against the emulator (no files: the text-only sibling of the file endpoints)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import read_dataset, write_job, write_rows

PROMPTS = [{"id": "c1", "prompt": "Q: What does `re.sub` do?\nA:"},
           {"id": "c2", "prompt": "def add(a, b):\n    \"\"\"Add"},
           {"id": "c3", "prompt": "Summarise FILTEROUT this"},
           {"id": "c4", "prompt": "BLOCKME please"}]


@pytest.mark.parametrize("stream", [False, True])
def test_completions_run(tmp_path: Path, emulator, stream: bool) -> None:
    spec = write_job(tmp_path, emulator.url, "completions", input_path=write_rows(tmp_path / "p.jsonl", PROMPTS),
                     inputs={"prompt": "prompt"}, params={"max_tokens": 20, "stream": stream},
                     service={"deployment": "gpt-35-turbo-instruct"}, limits={"tokens_per_minute": 60_000})
    result = run_job(load_spec(spec))
    assert result.exit_code == 1  # the blocked prompt
    records = {r["id"]: r for r in read_dataset(tmp_path / "out" / "results")}
    assert sorted(records) == ["c1", "c2", "c3"]
    for record in records.values():
        assert record["prompt_tokens"] > 0 and 0 < record["completion_tokens"] <= 20
    assert records["c1"]["text"] and records["c1"]["content_filtered"] is False
    assert records["c3"]["content_filtered"] is True and records["c3"]["finish_reason"] == "content_filter"
    (failure,) = read_dataset(tmp_path / "out" / "failures")
    assert failure["id"] == "c4" and failure["error_class"] == "ContentFilterError"
    assert result.summary["tokens_in"] == sum(r["prompt_tokens"] for r in records.values())
