"""The importable API: what `from pipeline import ...` offers is exactly __all__."""

from __future__ import annotations

import pipeline


def test_all_names_exist_and_nothing_else_is_promised() -> None:
    assert set(pipeline.__all__) == {
        "APIError", "InputError", "JobAborted", "JobSpec", "PipelineError", "RunOptions", "RunResult",
        "SpecError", "__version__", "load_spec", "run_job", "run_job_async",
    }
    for name in pipeline.__all__:
        assert hasattr(pipeline, name), name


def test_run_job_from_python(tmp_path) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "hello"}\n{"id": "b", "text": "world"}\n')
    (tmp_path / "job.toml").write_text(f'''
name = "api"
endpoint = "embeddings"
[input]
path = "{tmp_path / 'in.jsonl'}"
text = "text"
[output]
path = "{tmp_path / 'out'}"
[service]
provider = "emulator"
deployment = "text-embedding-3-small"
''')
    result = pipeline.run_job(pipeline.load_spec(tmp_path / "job.toml"))
    assert isinstance(result, pipeline.RunResult)
    assert result.exit_code == 0
    assert result.summary["rows_succeeded"] == 2
