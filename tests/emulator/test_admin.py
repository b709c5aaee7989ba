"""The admin routes: stats, runtime config, reset; and the thread runner."""

from __future__ import annotations

import json
import urllib.request

from pipeline.emulator import EmulatorConfig, EmulatorThread
from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url, fault_marker

STATS_KEYS = {
    "requests",
    "by_status",
    "by_op",
    "by_route",
    "by_deployment",
    "tokens_charged",
    "upload_bytes",
    "tokens_by_deployment",
    "throttled",
    "faults",
    "fault_markers",
    "in_flight",
    "max_in_flight",
    "admitted_times",
}


async def test_stats_count_what_happened(emulator, session) -> None:
    server = await emulator(rpm=60)
    url = azure_url(server.url, "emb", "embeddings")
    for text in ("a", "b", fault_marker("500")):
        async with session.post(url, json={"input": text}, headers=AZURE_KEY_HEADERS):
            pass
    async with session.get(f"{server.url}/_emulator/stats") as answer:
        stats = await answer.json()
    assert set(stats) == STATS_KEYS
    assert stats["requests"] == 3
    assert stats["by_status"] == {"200": 1, "429": 2}
    assert stats["by_op"] == {"embeddings": 3} and stats["by_route"] == {"azure": 3}
    assert stats["by_deployment"] == {"emb": 3}
    assert stats["throttled"] == 2 and stats["tokens_charged"] == 1
    assert len(stats["admitted_times"]) == 1 and stats["in_flight"] == 0


async def test_config_changes_apply_to_the_next_request(emulator, session) -> None:
    server = await emulator()
    async with session.post(f"{server.url}/_emulator/config", json={"deployments": ["only"], "rpm": 600}) as answer:
        view = await answer.json()
    assert answer.status == 200 and view["deployments"] == ["only"] and view["rpm"] == 600
    async with session.post(
        azure_url(server.url, "other", "embeddings"), json={"input": "x"}, headers=AZURE_KEY_HEADERS
    ) as answer:
        assert answer.status == 404
    async with session.get(f"{server.url}/_emulator/config") as answer:
        assert (await answer.json())["rpm"] == 600


async def test_bad_config_is_refused_whole(emulator, session) -> None:
    server = await emulator()
    async with session.post(f"{server.url}/_emulator/config", json={"rpm": 5, "colour": "red"}) as answer:
        assert answer.status == 400
        assert "colour" in (await answer.json())["error"]["message"]
    assert server.config.rpm is None


async def test_reset_forgets_stats_quotas_and_fault_counts(emulator, session) -> None:
    server = await emulator(rpm=60)
    url = azure_url(server.url, "emb", "embeddings")
    body = {"input": fault_marker("500")}
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 500
    async with session.post(f"{server.url}/_emulator/reset") as answer:
        assert answer.status == 200
    assert server.stats()["requests"] == 0
    async with session.post(url, json=body, headers=AZURE_KEY_HEADERS) as answer:
        assert answer.status == 500  # the marker counts again from zero, the quota window is empty


async def test_unknown_image_is_404(emulator, session) -> None:
    server = await emulator()
    async with session.get(f"{server.url}/_emulator/images/nothing.png") as answer:
        assert answer.status == 404


def test_thread_runner_for_sync_code() -> None:
    with EmulatorThread(EmulatorConfig(rpm=60)) as emulator:
        emulator.configure(rpm=None, deployments=["x"])
        request = urllib.request.Request(
            azure_url(emulator.url, "x", "embeddings"),
            data=json.dumps({"input": "hi"}).encode(),
            headers={**AZURE_KEY_HEADERS, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200
        assert emulator.stats()["by_status"] == {"200": 1}
        assert emulator.get_json("/_emulator/stats")["requests"] == 1
        emulator.reset()
        assert emulator.stats()["requests"] == 0
        assert emulator.config.deployments == {"x"}


def test_package_exports_what_it_lists() -> None:
    import pipeline.emulator as package

    assert all(hasattr(package, name) for name in package.__all__)


async def test_configure_in_process_accepts_a_token_verifier(emulator, session) -> None:
    server = await emulator()
    server.configure(token_verifier=lambda token: token == "t", rpm=600)
    url = azure_url(server.url, "e", "embeddings")
    async with session.post(url, json={"input": "x"}, headers={"Authorization": "Bearer t"}) as answer:
        assert answer.status == 200
    async with session.post(url, json={"input": "x"}, headers={"Authorization": "Bearer u"}) as answer:
        assert answer.status == 401
