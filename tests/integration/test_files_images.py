"""Image runs against the emulator: both response formats with n > 1, a blocked prompt, and
kill -9 mid-run then resume: every id exactly once, every image file whole and matching its row."""

from __future__ import annotations

import hashlib
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.emulator.png import PNG_SIGNATURE, png_bytes, png_size
from pipeline.runner import run_job
from pipeline.spec import load_spec

from .conftest import read_dataset, result_ids, run_cli, start_cli, write_job, write_rows

SIZE = 16


def prompts(n: int) -> list[dict[str, str]]:
    return [{"id": f"img-{i:03d}", "prompt": f"a lighthouse in style {i}"} for i in range(n)]


def image_job(tmp_path: Path, url: str, rows: list[dict[str, str]], params: dict, deployment: str = "dall-e-2",
              output: dict | None = None) -> Path:
    return write_job(tmp_path, url, "images", input_path=write_rows(tmp_path / "prompts.jsonl", rows),
                     inputs={"prompt": "prompt"}, params=params, service={"deployment": deployment},
                     limits={"concurrency": 4}, output={"flush_rows": 5, "flush_seconds": 0.2, **(output or {})})


def assert_files_match_rows(out: Path, records: list[dict], per_row: int) -> None:
    for record in records:
        assert len(record["paths"]) == len(record["bytes"]) == len(record["sha256"]) == per_row
        for relative, size, digest in zip(record["paths"], record["bytes"], record["sha256"], strict=True):
            data = (out / relative).read_bytes()
            assert data.startswith(PNG_SIGNATURE) and data.endswith(b"IEND\xaeB`\x82")
            assert png_size(data) == (SIZE, SIZE)
            assert len(data) == size and hashlib.sha256(data).hexdigest() == digest
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_n_images_per_prompt_saved(tmp_path: Path, emulator, response_format: str) -> None:
    emulator.configure(image_size_px=SIZE)
    rows = prompts(4)
    spec = image_job(tmp_path, emulator.url, rows, {"n": 3, "size": "256x256", "response_format": response_format})
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    out = tmp_path / "out"
    records = sorted(read_dataset(out / "results"), key=lambda r: r["id"])
    assert [r["id"] for r in records] == [r["id"] for r in rows]
    assert_files_match_rows(out, records, per_row=3)
    for record, row in zip(records, rows, strict=True):
        assert record["paths"] == [f"images/{row['id']}-{i}.png" for i in range(3)]
        for index, relative in enumerate(record["paths"]):
            assert (out / relative).read_bytes() == png_bytes(f"{row['prompt']}#{index}", SIZE, SIZE)
        assert record["revised_prompts"] == [None] * 3  # dall-e-2 does not revise prompts
        assert record["content_filtered"] is False
    assert emulator.stats()["by_op"] == {"images/generations": 4}
    assert len(list((out / "images").iterdir())) == 12


def test_single_image_and_blocked_prompt(tmp_path: Path, emulator) -> None:
    emulator.configure(image_size_px=SIZE)
    rows = [*prompts(2), {"id": "bad", "prompt": "a BLOCKME poster"}]
    spec = image_job(tmp_path, emulator.url, rows, {"response_format": "b64_json"}, deployment="dall-e-3")
    result = run_job(load_spec(spec))
    assert result.exit_code == 1
    records = read_dataset(tmp_path / "out" / "results")
    assert sorted(r["paths"][0] for r in records) == ["images/img-000.png", "images/img-001.png"]
    prompts_by_id = {row["id"]: row["prompt"] for row in rows}
    assert all(r["revised_prompts"][0].endswith(prompts_by_id[r["id"]]) for r in records)  # dall-e-3 revises
    assert_files_match_rows(tmp_path / "out", records, per_row=1)
    (failure,) = read_dataset(tmp_path / "out" / "failures")
    assert failure["id"] == "bad" and failure["error_class"] == "ContentFilterError"
    assert failure["attempts"] == 1 and "safety system" in failure["message"]
    assert failure["error_code"] == "content_policy_violation" and "violence" in failure["detail"]
    assert not (tmp_path / "out" / "images" / "bad.png").exists()


def wait_for_uncommitted_files(out: Path, timeout: float = 20) -> None:
    """Until some rows are committed and more images are on disk than committed rows point to:
    the moment a crash must not turn saved-but-uncommitted images into trusted ones."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        committed = len(result_ids(out))
        saved = len(list((out / "images").glob("*.png"))) if (out / "images").is_dir() else 0
        if committed and saved > 2 * committed:
            return
        time.sleep(0.01)
    raise AssertionError("the run never had saved-but-uncommitted images")


def test_kill_9_mid_run_then_resume(tmp_path: Path, emulator) -> None:
    emulator.configure(image_size_px=SIZE, latency_ms=40)
    rows = prompts(60)
    spec = image_job(tmp_path, emulator.url, rows, {"n": 2, "response_format": "url"}, output={"flush_seconds": 0.4})
    out = tmp_path / "out"
    proc = start_cli("run", str(spec), "-q")
    wait_for_uncommitted_files(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    partial = result_ids(out)
    assert 0 < len(partial) < len(rows)
    emulator.configure(latency_ms=0)
    rerun = run_cli("run", str(spec), "-q")
    assert rerun.returncode == 0, rerun.stderr
    ids = result_ids(out)
    assert max(Counter(ids).values()) == 1 and sorted(ids) == [r["id"] for r in rows]
    assert_files_match_rows(out, read_dataset(out / "results"), per_row=2)
    assert len(list((out / "images").iterdir())) == 2 * len(rows)
