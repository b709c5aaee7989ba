"""The same job against each route family: Azure classic, Azure v1, OpenAI-compatible."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import read_dataset, run_cli, write_job, write_rows


@pytest.mark.parametrize(("service", "env", "route"), [
    ({"provider": "azure", "api_version": "2024-10-21", "auth": "api-key"}, {"AZURE_OPENAI_API_KEY": "k-az"}, "azure"),
    ({"provider": "azure", "api_style": "v1", "auth": "api-key"}, {"AZURE_OPENAI_API_KEY": "k-az"}, "azure-v1"),
    ({"provider": "openai", "model": "text-embedding-3-small", "auth": "api-key"}, {"OPENAI_API_KEY": "k-oa"},
     "openai"),
])
def test_route_families(tmp_path: Path, emulator, service: dict, env: dict, route: str) -> None:
    key = next(iter(env.values()))
    emulator.configure(api_key=key)
    base = emulator.url + ("/v1" if service["provider"] == "openai" else "")
    spec = write_job(tmp_path, base, input_path=write_rows(tmp_path / "in.jsonl", [{"id": "a", "text": "hi"}]),
                     service={**service, "base_url": base})
    proc = run_cli("run", str(spec), "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    assert emulator.stats()["by_route"] == {route: 1}
    assert len(read_dataset(tmp_path / "out" / "results")) == 1


def test_azure_endpoint_from_environment(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", [{"id": "a", "text": "x"}]),
                     service={"provider": "azure", "base_url": None, "api_version": None})
    env = {"AZURE_OPENAI_ENDPOINT": emulator.url, "OPENAI_API_VERSION": "2024-10-21", "AZURE_OPENAI_API_KEY": "k"}
    proc = run_cli("run", str(spec), "-q", env=env)
    assert proc.returncode == 0, proc.stderr


def test_validate_checks_api_version_for_classic_routes(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", [{"id": "a", "text": "x"}]),
                     service={"provider": "azure", "api_version": None})
    proc = run_cli("validate", str(spec), env={"OPENAI_API_VERSION": ""})
    assert proc.returncode == 2 and "api_version: required for azure classic" in proc.stderr
