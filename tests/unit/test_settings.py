"""load_settings: parsing, errors that name the variable, fallback precedence, masking."""

from __future__ import annotations

import dataclasses
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings, SettingsError, env_name, load_settings, require


def test_defaults_without_environment() -> None:
    settings = load_settings(env={})
    assert settings == Settings(worker_id=settings.worker_id)
    assert settings.app_id == "kapparec-v1"


def test_values_are_parsed_to_their_types() -> None:
    settings = load_settings(
        env={
            "KAPPAREC_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "KAPPAREC_REDIS_URL": "redis://cache:6379/2",
            "KAPPAREC_PARTITIONS": "8",
            "KAPPAREC_VERSION": "3",
            "KAPPAREC_HALF_LIFE_S": "3600.5",
            "KAPPAREC_STATE_DIR": "/var/lib/kapparec",
            "KAPPAREC_LOG_LEVEL": "INFO",
            "KAPPAREC_WEB_PORT": "0",
        }
    )
    assert settings.kafka_bootstrap == "k1:9092,k2:9092"
    assert settings.redis_url == "redis://cache:6379/2"
    assert (settings.partitions, settings.version) == (8, 3)
    assert settings.half_life_s == 3600.5
    assert settings.state_dir == Path("/var/lib/kapparec")
    assert settings.log_level == "info"
    assert settings.web_port == 0
    assert settings.app_id == "kapparec-v3"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAPPAREC_PARTITIONS", "zero"),
        ("KAPPAREC_PARTITIONS", "0"),
        ("KAPPAREC_VERSION", "-1"),
        ("KAPPAREC_HALF_LIFE_S", "soon"),
        ("KAPPAREC_KAFKA_BOOTSTRAP", "localhost"),
        ("KAPPAREC_KAFKA_BOOTSTRAP", "k1:9092,k2"),
        ("KAPPAREC_REDIS_URL", "http://cache:6379"),
        ("KAPPAREC_NAMESPACE", "has space"),
        ("KAPPAREC_LOG_LEVEL", "loud"),
        ("KAPPAREC_WEB_PORT", "-5"),
        ("KAPPAREC_HTTP_PORT", "0"),
        ("KAPPAREC_HTTP_PORT", "70000"),
        ("KAPPAREC_HTTP_PORT", "http"),
        ("KAPPAREC_HTTP_HOST", "bad host"),
        ("KAPPAREC_HTTP_PROCESSES", "0"),
        ("KAPPAREC_METRICS_FLUSH_S", "0"),
        ("KAPPAREC_RULES", "brand=acme"),
        ("KAPPAREC_RULES", "colour=red*2"),
        ("KAPPAREC_RULES", "brand=acme*-1"),
        ("KAPPAREC_RULES", "brand=acme*lots"),
        ("KAPPAREC_RULES", "brand=acme,brand=other*2"),
        ("KAPPAREC_CATEGORY_CAP", "-1"),
        ("KAPPAREC_LOOP_STALL_MS", "-1"),
        ("KAPPAREC_HALF_LIFE_S", "nan"),
        ("KAPPAREC_FLUSH_INTERVAL_S", "inf"),
        ("KAPPAREC_AB_ALPHA", "nan"),
        ("KAPPAREC_SETTLE_S", "-5"),
        ("KAPPAREC_SETTLE_S", "nan"),
        ("KAPPAREC_SETTLE_S", "inf"),
    ],
)
def test_malformed_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable) as info:
        load_settings(env={variable: value})
    assert repr(value) in str(info.value)


def test_unknown_kapparec_variable_is_rejected() -> None:
    with pytest.raises(SettingsError, match=r"KAPPAREC_PARTITION\b"):
        load_settings(env={"KAPPAREC_PARTITION": "4"})


def test_other_variables_are_ignored() -> None:
    assert load_settings(env={"PATH": "/bin", "KAFKA_BOOTSTRAP": "x"}).kafka_bootstrap == ""


def test_environment_wins_over_fallback() -> None:
    fallback = {"kafka_bootstrap": "127.0.0.1:1111", "redis_url": "redis://127.0.0.1:2222/0"}
    settings = load_settings(env={"KAPPAREC_KAFKA_BOOTSTRAP": "broker:9092"}, fallback=fallback)
    assert settings.kafka_bootstrap == "broker:9092"
    assert settings.redis_url == "redis://127.0.0.1:2222/0"


def test_fallback_may_carry_extra_keys_and_is_validated() -> None:
    state: dict[str, Any] = {
        "kafka_bootstrap": "127.0.0.1:1111",
        "pids": {"broker": 1},
        "started_at": "now",
    }
    assert load_settings(env={}, fallback=state).kafka_bootstrap == "127.0.0.1:1111"
    with pytest.raises(SettingsError, match="KAPPAREC_KAFKA_BOOTSTRAP"):
        load_settings(env={}, fallback={"kafka_bootstrap": "nonsense"})


def test_overrides_win_over_environment() -> None:
    settings = load_settings(env={"KAPPAREC_VERSION": "2"}, version=7)
    assert settings.version == 7


def test_settle_may_be_zero() -> None:
    assert load_settings(env={"KAPPAREC_SETTLE_S": "0"}).settle_s == 0.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("version", -3),
        ("partitions", 0),
        ("half_life_s", float("nan")),
        ("settle_s", -5.0),
        ("namespace", "has space"),
        ("http_port", 70_000),
        ("kafka_bootstrap", "localhost"),
    ],
)
def test_malformed_override_names_the_setting(name: str, value: Any) -> None:
    with pytest.raises(SettingsError, match=rf"^{name}={re.escape(repr(value))} is invalid: "):
        load_settings(env={}, **{name: value})


def test_overrides_keep_their_types(tmp_path: Path) -> None:
    settings = load_settings(
        env={},
        version=2,
        half_life_s=60,
        settle_s=0.01,
        state_dir=str(tmp_path),
        data_dir=tmp_path,
        recs_out=False,
        lists_on_refresh=True,
        log_level="INFO",
        topic_prefix="",
    )
    assert (settings.version, settings.half_life_s, settings.settle_s) == (2, 60.0, 0.01)
    assert settings.state_dir == settings.data_dir == tmp_path
    assert (settings.recs_out, settings.lists_on_refresh) == (False, True)
    assert (settings.log_level, settings.topic_prefix) == ("info", "")


def test_default_worker_id_tells_hosts_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # In containers every worker may be PID 1: only the host name differs.
    monkeypatch.setattr("os.getpid", lambda: 1)
    monkeypatch.setattr(socket, "gethostname", lambda: "3f2a9c1b7d4e")
    first = load_settings(env={}).worker_id
    monkeypatch.setattr(socket, "gethostname", lambda: "worker_2.kapparec_default")
    second = load_settings(env={}).worker_id
    assert first == "3f2a9c1b7d4e-1" and first != second
    monkeypatch.setattr(socket, "gethostname", lambda: "a long host name! " * 10)
    long = load_settings(env={}).worker_id
    assert load_settings(env={"KAPPAREC_WORKER_ID": long}).worker_id == long  # a valid id
    assert long.endswith("-1")


def test_redis_password_is_masked_in_repr() -> None:
    settings = load_settings(env={"KAPPAREC_REDIS_URL": "redis://app:s3cret@cache:6379/0"})
    assert "s3cret" not in repr(settings)
    assert "redis://app:***@cache:6379/0" in repr(settings)
    assert settings.redis_url == "redis://app:s3cret@cache:6379/0"


def test_settings_are_frozen() -> None:
    settings = load_settings(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.version = 2  # type: ignore[misc]


def test_require_names_the_missing_variable() -> None:
    with pytest.raises(SettingsError, match="KAPPAREC_REDIS_URL"):
        require(load_settings(env={}), "redis_url")
    require(load_settings(env={"KAPPAREC_REDIS_URL": "redis://x:1/0"}), "redis_url")


def test_env_name() -> None:
    assert env_name("half_life_s") == "KAPPAREC_HALF_LIFE_S"


def test_rules_are_parsed_into_business_rules() -> None:
    from streams.models.rerank import Rule

    settings = load_settings(
        env={"KAPPAREC_RULES": " category=shoes , brand=acme*1.5; brand=junk*0 ;"}
    )
    assert settings.business_rules == (Rule(1.5, "shoes", "acme"), Rule(0.0, None, "junk"))
    assert load_settings(env={}).business_rules == ()


@pytest.mark.parametrize(
    ("kept", "partitions", "per_partition"),
    [(400, 4, 100), (400, 48, 9), (400, 1, 400), (10, 4, 3), (1, 64, 1)],
)
def test_the_neighbour_budget_is_split_over_the_partitions(
    kept: int, partitions: int, per_partition: int
) -> None:
    s = Settings(neighbours_kept=kept, partitions=partitions)
    assert s.neighbours_per_partition == per_partition
    # the lists of all partitions together stay within the budget, rounded up per list
    assert kept <= partitions * per_partition < kept + partitions
