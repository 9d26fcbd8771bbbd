"""Config: discovery, precedence, relative paths, validation errors, `config show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from epyc_agent.config import load_config
from epyc_agent.errors import ConfigError
from tests.conftest import run_cli


def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_default_root_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no flag, env or file, the root is the lab's /mnt/raid0/llm and log_dir is under it."""
    monkeypatch.delenv("EPYC_AGENT_ROOT")
    cfg = load_config()
    assert cfg.root == "/mnt/raid0/llm"
    assert cfg.log_dir == "/mnt/raid0/llm/logs"
    assert cfg.sources["root"] == "default"
    assert cfg.model_dirs == ["/mnt/raid0/llm/models", "/mnt/raid0/llm/lmstudio/models", "/mnt/raid0/llm/hf"]


def test_precedence_flag_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flag > EPYC_AGENT_ROOT > LLM_ROOT > file > default."""
    write(tmp_path / "epyc-agent.yaml", "root: from-file\n")
    monkeypatch.delenv("EPYC_AGENT_ROOT")
    assert load_config().root == str(tmp_path / "from-file")
    monkeypatch.setenv("LLM_ROOT", "/old")
    assert load_config().root == "/old"
    assert load_config().sources["root"] == "env:LLM_ROOT"
    monkeypatch.setenv("EPYC_AGENT_ROOT", "/new")
    assert load_config().root == "/new"
    assert load_config(root="/flag").root == "/flag"
    assert load_config(root="/flag").sources["root"] == "flag"


def test_relative_paths_resolve_against_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths in a config file are relative to the file's folder, not the cwd."""
    monkeypatch.delenv("EPYC_AGENT_ROOT")
    cfg_file = write(tmp_path / "conf" / "c.yaml", "root: ../lab\nlog_dir: logs\nmodel_dirs: [m1, /abs/m2]\n")
    monkeypatch.chdir(tmp_path / "conf")
    monkeypatch.setenv("EPYC_AGENT_CONFIG", str(cfg_file))
    cfg = load_config()
    assert cfg.root == str(tmp_path / "lab")
    assert cfg.log_dir == str(tmp_path / "conf" / "logs")
    assert cfg.model_dirs == [str(tmp_path / "conf" / "m1"), "/abs/m2"]
    assert cfg.sources["log_dir"] == f"file:{cfg_file}"


def test_home_config_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """~/.config/epyc-agent/config.yaml is the last place looked."""
    monkeypatch.delenv("EPYC_AGENT_ROOT")
    write(tmp_path / "home" / ".config" / "epyc-agent" / "config.yaml", "root: /from/home\n")
    assert load_config().root == "/from/home"


def test_sections_and_defaults(tmp_path: Path) -> None:
    """Section keys override defaults one by one."""
    f = write(tmp_path / "c.yaml", "guards: {bash: warn, retry_limit: 5}\ndisk: {min_free_gb: 1}\n")
    cfg = load_config(str(f))
    assert cfg.guards["bash"] == "warn" and cfg.guards["retry_limit"] == 5
    assert cfg.guards["storage"] == "enforce"
    assert cfg.disk["min_free_gb"] == 1.0
    assert cfg.sources["guards.bash"] == f"file:{f}"
    assert cfg.sources["guards.storage"] == "default"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("root: [unclosed\n", "invalid YAML"),
        ("bogus: 1\n", "unknown key 'bogus'"),
        ("guards: {nope: 1}\n", "unknown key 'guards.nope'"),
        ("root: 5\n", "key 'root': expected a non-empty string"),
        ("guards: {retry_limit: three}\n", "key 'guards.retry_limit': expected an integer"),
        ("guards: {bash: maybe}\n", "expected one of enforce, warn, off"),
        ("- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_files_name_file_key_and_problem(tmp_path: Path, text: str, needle: str) -> None:
    """Every bad file gives one clear line with the file name and the problem."""
    f = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as e:
        load_config(str(f))
    assert str(f) in str(e.value) and needle in str(e.value)


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    """The CLI prints one line (no traceback) and exits 2."""
    f = write(tmp_path / "bad.yaml", "root: [x\n")
    r = run_cli("--config", str(f), "config", "show")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "invalid YAML" in r.stderr and "Traceback" not in r.stderr


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    r = run_cli("--config", str(tmp_path / "nope.yaml"), "config", "show")
    assert r.returncode == 2 and "not found" in r.stderr


def test_config_show_json_reports_sources(root: Path) -> None:
    """`config show --json` gives values and a source for each."""
    r = run_cli("config", "show", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["values"]["root"] == str(root)
    assert data["sources"]["root"] == "env:EPYC_AGENT_ROOT"
    assert data["sources"]["log_dir"] == "default"
    assert data["values"]["guards"]["retry_limit"] == 3


def test_config_cache_is_used_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With EPYC_AGENT_LOG_DIR set, the parsed file is cached and re-read when it changes."""
    logs = tmp_path / "logs"
    monkeypatch.setenv("EPYC_AGENT_LOG_DIR", str(logs))
    f = write(tmp_path / "c.yaml", "guards: {bash: warn}\n")
    assert load_config(str(f)).guards["bash"] == "warn"
    cache = json.loads((logs / ".state" / "config-cache.json").read_text())
    assert cache["data"]["values"] == {"guards.bash": "warn"}
    write(f, "guards: {bash: off, retry_limit: 7}\n")
    cfg = load_config(str(f))
    assert cfg.guards["bash"] == "off" and cfg.guards["retry_limit"] == 7


def test_forged_config_cache_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent rewriting the cache to switch a guard off (keeping the key) changes nothing."""
    logs = tmp_path / "logs"
    monkeypatch.setenv("EPYC_AGENT_LOG_DIR", str(logs))
    f = write(tmp_path / "c.yaml", "guards: {bash: enforce}\n")
    load_config(str(f))
    cache_file = logs / ".state" / "config-cache.json"
    cache = json.loads(cache_file.read_text())
    cache["data"]["values"] = {"guards.bash": "off"}
    cache_file.write_text(json.dumps(cache))
    assert load_config(str(f)).guards["bash"] == "enforce"
