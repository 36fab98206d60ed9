"""Where the command line reads its settings from."""

from __future__ import annotations

from pathlib import Path

from cli.config import load_config, read_env_file, write_env_file


def test_dev_env_in_the_current_folder_then_the_environment_wins(tmp_path: Path) -> None:
    home = tmp_path / ".worklets"
    write_env_file(
        home / "dev.env",
        {"WORKLETS_GATEWAY_URL": "http://127.0.0.1:9000/", "WORKLETS_APP_ID": "fromfile"},
    )
    assert (home / "dev.env").stat().st_mode & 0o777 == 0o600

    from_file = load_config({"WORKLETS_HOME": str(home)})
    assert from_file.gateway_url == "http://127.0.0.1:9000"
    assert from_file.app_id == "fromfile"
    assert from_file.registry_url == "http://127.0.0.1:8001"  # default
    assert from_file.api_key is None

    env = {"WORKLETS_HOME": str(home), "WORKLETS_APP_ID": "fromenv", "WORKLETS_API_KEY": "wk_1"}
    overridden = load_config(env)
    assert overridden.app_id == "fromenv" and overridden.api_key == "wk_1"


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / "dev.env"
    path.write_text("# comment\n\nexport A=1\nB='two words'\nC=\"3\"\nnot a setting\nD=x=y\n")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "3", "D": "x=y"}
    assert read_env_file(tmp_path / "missing.env") == {}
