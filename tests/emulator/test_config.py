"""Runtime config updates and the pure auth rule."""

from __future__ import annotations

import pytest

from pipeline.emulator.auth import auth_failure
from pipeline.emulator.config import EmulatorConfig, apply_updates, public_view


def test_updates_are_coerced_and_applied() -> None:
    config = EmulatorConfig()
    apply_updates(config, {"rpm": 60, "window_s": 10, "deployments": ["a", "b"], "api_key": None})
    assert (config.rpm, config.window_s, config.deployments) == (60, 10.0, {"a", "b"})


@pytest.mark.parametrize("updates", [{"nope": 1}, {"rpm": "many"}, {"rpm": 1.5}, {"token_verifier": None}])
def test_bad_updates_change_nothing(updates: dict[str, object]) -> None:
    config = EmulatorConfig()
    with pytest.raises(ValueError):
        apply_updates(config, {"tpm": 1000, **updates})
    assert config.tpm is None


def test_public_view_masks_the_key() -> None:
    view = public_view(EmulatorConfig(api_key="secret", deployments={"b", "a"}))
    assert view["api_key"] == "***" and view["deployments"] == ["a", "b"]


@pytest.mark.parametrize(
    ("headers", "config", "expected"),
    [
        ({}, EmulatorConfig(), "missing"),
        ({"api-key": "anything"}, EmulatorConfig(), None),
        ({"api-key": ""}, EmulatorConfig(), "key"),
        ({"api-key": "wrong"}, EmulatorConfig(api_key="right"), "key"),
        ({"api-key": "right"}, EmulatorConfig(api_key="right"), None),
        ({"Authorization": "Bearer right"}, EmulatorConfig(api_key="right"), None),
        ({"Authorization": "Bearer wrong"}, EmulatorConfig(api_key="right"), "key"),
        ({"Authorization": "Basic abc"}, EmulatorConfig(), "token"),
        ({"Authorization": "Bearer good"}, EmulatorConfig(token_verifier=lambda t: t == "good"), None),
        ({"Authorization": "Bearer bad"}, EmulatorConfig(token_verifier=lambda t: t == "good"), "token"),
    ],
)
def test_auth_rule(headers: dict[str, str], config: EmulatorConfig, expected: str | None) -> None:
    assert auth_failure(headers, config) == expected


def test_openai_routes_treat_the_bearer_token_as_the_key() -> None:
    config = EmulatorConfig(token_verifier=lambda token: False)
    assert auth_failure({"Authorization": "Bearer sk-anything"}, config, azure=False) is None
