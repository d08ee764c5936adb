"""One frozen settings object, read from ``KAPPAREC_*`` environment variables.

Every setting has a default that works with the embedded stack (``kapparec up``);
production points ``KAPPAREC_KAFKA_BOOTSTRAP`` and ``KAPPAREC_REDIS_URL`` at real
services. A malformed value stops start-up with an error that names the variable.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams import item_state

if TYPE_CHECKING:
    from streams.models.rerank import Rule

PREFIX = "KAPPAREC_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


SECRET = "***"
# Settings whose values never appear in a repr or a log line.
SECRET_FIELDS = frozenset({"kafka_sasl_password", "kafka_ssl_key_password", "redis_password"})
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def mask_url(text: str) -> str:
    """Hide passwords of ``scheme://user:password@host`` URLs anywhere in ``text``."""
    # Greedy to the last "@" of the word: a password may itself contain "@" unencoded.
    return re.sub(r"(//[^:/@\s]*:)\S*@", r"\1" + SECRET + "@", text)


def default_worker_id() -> str:
    """``{hostname}-{pid}``, within the ``worker_id`` rule: unique per container, where
    every process may be PID 1."""
    suffix = f"-{os.getpid()}"
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[: 64 - len(suffix)]
    return (host or "w") + suffix


@dataclass(frozen=True, slots=True)
class Settings:
    """Runtime configuration; build it with :func:`load_settings`."""

    kafka_bootstrap: str = ""
    redis_url: str = ""
    version: int = 1
    partitions: int = 4
    namespace: str = "kapparec"
    topic_prefix: str = ""
    state_dir: Path = Path(".kapparec")
    data_dir: Path = Path("../shared/data")
    # ingest
    max_event_bytes: int = 16_384
    # Interactions and catalogue records dated further ahead of a worker's clock are
    # dead-lettered (0 = no limit): see agents.record_checks.check_not_ahead.
    max_future_s: int = 86_400
    batch_size: int = 3_000
    batch_within_s: float = 0.05
    # per-user state
    recent_size: int = 20
    # item side
    half_life_s: float = 3 * 86_400.0
    # neighbours kept per item and relation, split over the source partitions
    neighbours_kept: int = 400
    trending_size: int = 100
    # publishing
    list_size: int = 50
    # also-bought / also-viewed lists: 50 long, so a user's list collects votes from
    # neighbours beyond an anchor's top 20 (docs/MODELS.md)
    item_list_size: int = 50
    similar_list_size: int = 20  # similar-items lists (the item-vector replica)
    user_ttl_s: int = 30 * 86_400
    # user records: "json" (the orjson record) or "packed" (streams.packed: about a
    # quarter of the Redis memory; readers decode it with streams.serving.decode_user)
    user_list_encoding: str = "json"
    item_ttl_s: int = 30 * 86_400
    version_ttl_s: int = 7 * 86_400
    settle_s: float = 10.0
    # Write user lists only when a refresh asks (``kapparec replay`` sets it for its
    # worker): a namespace nobody reads yet gets each list once, at the end, instead of
    # after every batch that touched the user.
    lists_on_refresh: bool = False
    flush_interval_s: float = 0.5
    # The item side folds item deltas for up to this long before it writes the touched
    # items' states and lists: under live traffic a busy item is then written once per
    # interval, not once per ingest batch.
    item_flush_s: float = 1.0
    variant: str = "A"
    # re-rank of user lists: business rules (see streams.models.rerank.parse_rules) and
    # at most this many items per category (0 = no cap)
    rules: str = ""
    category_cap: int = 0
    # experiments (docs/EXPERIMENTS.md): empty split = every user gets `variant`
    ab_salt: str = "kapparec"
    ab_split: str = ""
    ab_window_s: float = 1_800.0
    ab_alpha: float = 0.05
    ab_test: str = "msprt"
    metrics_interval_s: float = 5.0
    drift_delta: float = 0.002
    recs_out: bool = True
    # worker
    worker_id: str = field(default_factory=default_worker_id)
    web_port: int = 0
    session_timeout_s: float = 10.0
    # Longest wait of a fetch with nothing to return. Kafka answers as soon as data
    # arrives; a broker that does not (the embedded one) answers only when it runs out,
    # so every hop of the pipeline waited up to Faust's fixed 1.5 s.
    fetch_max_wait_ms: int = 100
    # Log the event loop's stack when it has not turned for this long (0 = off).
    loop_stall_ms: int = 500
    log_level: str = "warning"
    # security: Kafka (SASL and/or TLS) for every Kafka client, Redis AUTH and TLS
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    kafka_ssl_key_password: str = field(default="", repr=False)
    redis_username: str = ""
    redis_password: str = field(default="", repr=False)
    redis_ssl_cafile: str = ""
    # How long a worker waits for an unreachable Redis, paused, before it gives up and exits.
    redis_outage_max_s: float = 300.0
    # HTTP read API and dashboard (``kapparec serve``)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_processes: int = 2
    metrics_flush_s: float = 1.0

    @property
    def split(self) -> tuple[tuple[str, int], ...]:
        """The A/B split as ``((variant, weight), ...)``; empty when no experiment runs."""
        return parse_split(self.ab_split) if self.ab_split else ()

    @property
    def business_rules(self) -> tuple[Rule, ...]:
        """The parsed ``rules``: score multipliers by category prefix and/or brand."""
        from streams.models.rerank import parse_rules

        return parse_rules(self.rules)

    @property
    def neighbours_per_partition(self) -> int:
        """The cap of one source partition's neighbour list (streams/item_state.py):
        ``neighbours_kept`` split evenly over the partitions, so that an item's neighbours
        stay bounded by ``neighbours_kept`` (rounded up) whatever the partition count."""
        return -(-self.neighbours_kept // self.partitions)

    @property
    def neighbour_list_bytes(self) -> int:
        """The encoded size one source partition's neighbour list may reach, so that an
        item's changelog record stays under the producers' 1 MB limit whatever its
        neighbours' ids (streams/item_state.py)."""
        return item_state.list_bytes(self.partitions)

    @property
    def app_id(self) -> str:
        """Faust application id: consumer group and table-name prefix of this version."""
        return f"{self.topic_prefix}{self.namespace}-v{self.version}"

    def __repr__(self) -> str:
        fields = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("redis_url", "kafka_bootstrap"):
                value = mask_url(str(value))
            elif f.name in SECRET_FIELDS and value:
                value = SECRET
            fields.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(fields)})"


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _positive_float(raw: str) -> float:
    value = _finite(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(raw: str) -> float:
    value = _finite(raw)
    if value < 0:
        raise ValueError("must be zero or a positive number")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _name(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", raw):
        raise ValueError("must be 1-64 characters of letters, digits, '_', '.', '-'")
    return raw


def _bootstrap(raw: str) -> str:
    for part in raw.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("must be host:port[,host:port...]")
    return raw


def _redis_url(raw: str) -> str:
    if not re.match(r"^(redis|rediss|unix)://", raw):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


def _host(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:\-\[\]]{1,253}", raw):
        raise ValueError("must be a host name or an IP address")
    return raw


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65_535:
        raise ValueError("must be a TCP port, 1-65535")
    return value


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _choice(*allowed: str) -> Callable[[str], str]:
    """One of ``allowed``, whatever the case given."""
    by_key = {a.casefold(): a for a in allowed}

    def parse(raw: str) -> str:
        value = by_key.get(raw.strip().casefold())
        if value is None:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def parse_split(raw: str) -> tuple[tuple[str, int], ...]:
    """``"A:50,B:50"`` as ``(("A", 50), ("B", 50))``; raises ValueError when malformed."""
    arms: list[tuple[str, int]] = []
    for part in raw.split(","):
        name, sep, weight = part.strip().partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or not weight.isdigit():
            raise ValueError("must be NAME:WEIGHT[,NAME:WEIGHT...], e.g. A:50,B:50")
        if any(name == n for n, _ in arms):
            raise ValueError(f"variant {name!r} is listed twice")
        arms.append((name, int(weight)))
    if len(arms) < 2:
        raise ValueError("an experiment needs at least two variants")
    if sum(w for _, w in arms) <= 0 or any(w <= 0 for _, w in arms):
        raise ValueError("every weight must be a positive integer")
    from streams.experiments import BUCKETS  # settings -> experiments only here; no cycle

    if sum(w for _, w in arms) > BUCKETS:
        # Users are dealt in BUCKETS buckets: a smaller share than one would get none.
        raise ValueError(f"the weights must add up to at most {BUCKETS}")
    return tuple(arms)


def _split(raw: str) -> str:
    from streams.experiments import PROFILES  # blending -> schemas only; no cycle

    arms = parse_split(raw)
    unknown = [n for n, _ in arms if n not in PROFILES]
    if unknown:
        raise ValueError(
            f"no ranking profile for {', '.join(unknown)}; known: {', '.join(PROFILES)}"
        )
    return ",".join(f"{n}:{w}" for n, w in arms)


def _rules(raw: str) -> str:
    from streams.models.rerank import parse_rules

    parse_rules(raw)  # raises ValueError with the offending rule
    return raw


def _probability(raw: str) -> float:
    value = _finite(raw)
    if not 0 < value < 1:
        raise ValueError("must be between 0 and 1 (exclusive)")
    return value


def _test(raw: str) -> str:
    if raw.lower() not in ("msprt", "z"):
        raise ValueError("must be msprt (always-valid, safe to peek) or z (fixed horizon)")
    return raw.lower()


def _level(raw: str) -> str:
    if raw.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError("must be one of debug, info, warning, error")
    return raw.lower()


_PARSERS: dict[str, Callable[[str], Any]] = {
    "kafka_bootstrap": _bootstrap,
    "redis_url": _redis_url,
    "version": _positive_int,
    "partitions": _positive_int,
    "namespace": _name,
    "topic_prefix": _name,
    "state_dir": Path,
    "data_dir": Path,
    "max_event_bytes": _positive_int,
    "max_future_s": _non_negative_int,
    "batch_size": _positive_int,
    "batch_within_s": _positive_float,
    "recent_size": _positive_int,
    "half_life_s": _positive_float,
    "neighbours_kept": _positive_int,
    "trending_size": _positive_int,
    "list_size": _positive_int,
    "item_list_size": _positive_int,
    "similar_list_size": _positive_int,
    "user_ttl_s": _positive_int,
    "item_ttl_s": _positive_int,
    "version_ttl_s": _positive_int,
    "settle_s": _non_negative_float,
    "lists_on_refresh": _bool,
    "flush_interval_s": _positive_float,
    "item_flush_s": _positive_float,
    "variant": _name,
    "rules": _rules,
    "category_cap": _non_negative_int,
    "ab_salt": _name,
    "ab_split": _split,
    "ab_window_s": _positive_float,
    "ab_alpha": _probability,
    "ab_test": _test,
    "metrics_interval_s": _positive_float,
    "drift_delta": _probability,
    "recs_out": _bool,
    "user_list_encoding": _choice("json", "packed"),
    "worker_id": _name,
    "web_port": _non_negative_int,
    "session_timeout_s": _positive_float,
    "fetch_max_wait_ms": _positive_int,
    "loop_stall_ms": _non_negative_int,
    "log_level": _level,
    "kafka_security_protocol": _choice(*SECURITY_PROTOCOLS),
    "kafka_sasl_mechanism": _choice(*SASL_MECHANISMS),
    "kafka_sasl_username": str,
    "kafka_sasl_password": str,
    "kafka_ssl_cafile": str,
    "kafka_ssl_certfile": str,
    "kafka_ssl_keyfile": str,
    "kafka_ssl_key_password": str,
    "redis_username": str,
    "redis_password": str,
    "redis_ssl_cafile": str,
    "http_host": _host,
    "http_port": _port,
    "http_processes": _positive_int,
    "metrics_flush_s": _positive_float,
    "redis_outage_max_s": _positive_float,
}


# Fields whose default is the empty text ("not set"), so an override may clear them.
_EMPTY_DEFAULT = {f.name: f.default == "" for f in dataclasses.fields(Settings)}


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return PREFIX + field_name.upper()


def load_settings(
    env: Mapping[str, str] | None = None,
    fallback: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from ``env`` (default ``os.environ``), then ``fallback``, then defaults.

    ``fallback`` carries the addresses recorded by ``kapparec up``; explicit environment
    variables always win. ``overrides`` (by field name) win over both and pass the same
    checks. Raises :class:`SettingsError` naming the bad variable or override.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        var = env_name(name)
        raw = env.get(var) or None
        if raw is None and fallback is not None:
            raw = fallback.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{var}={raw!r} is invalid: {exc}") from None
    unknown = sorted(
        k for k in env if k.startswith(PREFIX) and k[len(PREFIX) :].lower() not in _PARSERS
    )
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    values.update({name: _override(name, value) for name, value in overrides.items()})
    settings = Settings(**values)
    check_security(settings)
    return settings


def _override(name: str, value: Any) -> Any:
    """``value`` given for field ``name`` in code or on a command line, checked like its
    variable. None, and an empty text where the default is empty, pass as given."""
    parse = _PARSERS.get(name)
    if parse is None or value is None or (value == "" and _EMPTY_DEFAULT.get(name)):
        return value  # an unknown name fails in Settings(), as a TypeError
    try:
        return parse(str(value))
    except ValueError as exc:
        raise SettingsError(f"{name}={value!r} is invalid: {exc}") from None


def check_security(settings: Settings) -> None:
    """Refuse security settings that contradict each other, naming the variables.

    A credential that would be silently ignored (a SASL password with PLAINTEXT, a CA
    file without TLS) is an error: the operator believes the connection is protected.
    """
    protocol = settings.kafka_security_protocol
    proto_var = env_name("kafka_security_protocol")
    sasl = protocol.startswith("SASL_")
    tls = protocol in ("SSL", "SASL_SSL")
    for name in ("kafka_sasl_username", "kafka_sasl_password"):
        if sasl and not getattr(settings, name):
            raise SettingsError(f"{env_name(name)} is required with {proto_var}={protocol}")
        if not sasl and getattr(settings, name):
            raise SettingsError(f"{env_name(name)} is set but {proto_var}={protocol} ignores it")
    for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
        if not tls and getattr(settings, name):
            raise SettingsError(f"{env_name(name)} is set but {proto_var}={protocol} ignores it")
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise SettingsError(
            f"{env_name('kafka_ssl_keyfile')} needs {env_name('kafka_ssl_certfile')}"
        )
    if settings.redis_ssl_cafile and not settings.redis_url.startswith("rediss://"):
        raise SettingsError(
            f"{env_name('redis_ssl_cafile')} is set but {env_name('redis_url')} is not rediss://"
        )


def to_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in another process."""
    return {
        env_name(name): str(getattr(settings, name))
        for name in _PARSERS
        if name != "worker_id" and getattr(settings, name) not in ("", None)
    }


def require(settings: Settings, *names: str) -> None:
    """Fail fast when a setting a command needs is empty, naming its variable."""
    for name in names:
        if not getattr(settings, name):
            raise SettingsError(
                f"{env_name(name)} is not set: point it at your service, "
                "or run `kapparec up` to start the embedded stack"
            )
