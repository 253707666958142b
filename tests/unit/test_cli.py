"""CLI: settings errors and missing keys fail before any work, naming the problem."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from personamath.cli import app

runner = CliRunner()


def test_missing_key_fails_before_work(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    store = tmp_path / "s"
    res = runner.invoke(app, ["run", "--demo", "--provider", "anthropic", "--store", str(store)])
    assert res.exit_code == 2
    assert "ANTHROPIC_API_KEY" in res.output
    assert not store.exists(), "nothing may be written before the key check"


def test_invalid_setting_is_named() -> None:
    res = runner.invoke(app, ["run", "--demo", "--set", "teacher.max_tokens=abc"])
    assert res.exit_code == 2 and "teacher.max_tokens" in res.output
    res = runner.invoke(app, ["run", "--demo", "--set", "nonsense=1"])
    assert res.exit_code == 2 and "nonsense" in res.output
    res = runner.invoke(app, ["run"])
    assert res.exit_code == 2 and "--demo" in res.output


def test_config_prints_yaml_settings() -> None:
    res = runner.invoke(app, ["config", "--demo", "--set", "k1=4"])
    assert res.exit_code == 0
    data = yaml.safe_load(res.output)
    assert data["k1"] == 4 and data["teacher"]["provider"] == "local"
    assert "api_key" not in res.output.replace("api_key_env", "")
