"""Kafka and Redis administration: create and verify topics, check that services answer.

This is the only module that does admin I/O against the broker and Redis; the CLI, the
embedded stack launcher and the test fixtures all go through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis
from confluent_kafka import KafkaError, KafkaException

# The documented import path; the names are re-exported from the C extension.
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic  # type: ignore[attr-defined]

from schemas.errors import KapparecError
from streams.settings import mask_url
from streams.topics import TopicSpec

KAFKA_SETTING = "KAPPAREC_KAFKA_BOOTSTRAP"
REDIS_SETTING = "KAPPAREC_REDIS_URL"
REDIS_AUTH_SETTINGS = "KAPPAREC_REDIS_USERNAME/KAPPAREC_REDIS_PASSWORD"

# librdkafka logs every failed connection attempt to stderr by default; route it through
# logging so a probe of a closed port stays quiet unless the application wants the detail.
_kafka_log = logging.getLogger("kapparec.kafka")
_kafka_log.addHandler(logging.NullHandler())


class ServiceUnavailable(KapparecError):
    """A broker or Redis did not answer; the message names the setting that points at it."""

    def __init__(
        self, service: str, address: str, setting: str, reason: str, problem: str = "did not answer"
    ) -> None:
        super().__init__(f"{service} at {address} {problem} ({reason}); check {setting}")
        self.service = service
        self.address = address
        self.setting = setting


class TopicError(KapparecError):
    """A topic could not be created or is not what the topic registry expects."""

    def __init__(self, topic: str, message: str) -> None:
        super().__init__(message)
        self.topic = topic


class TopicMismatch(TopicError):
    """A topic exists with another partition count than the registry's."""

    def __init__(self, topic: str, expected: int, actual: int) -> None:
        super().__init__(
            topic,
            f"topic {topic!r} has {actual} partition(s) but {expected} are expected; Kafka "
            "cannot shrink a topic and growing it moves keys to other partitions. Make "
            "KAPPAREC_PARTITIONS match the existing topics, or recreate the topic and "
            "replay into a new version: a version's state remembers the offsets it applied, "
            "and a recreated topic's events, whose offsets start again, would be skipped",
        )
        self.expected = expected
        self.actual = actual


def _admin(bootstrap: str, security: Mapping[str, str] | None = None) -> AdminClient:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "logger": _kafka_log,
        **(security or {}),
    }
    return AdminClient(config)


def _kafka_reason(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if isinstance(err, KafkaError) else str(exc)


def _metadata(admin: AdminClient, bootstrap: str, timeout: float) -> ClusterMetadata:
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ServiceUnavailable("Kafka", bootstrap, KAFKA_SETTING, _kafka_reason(exc)) from None


def check_kafka(
    bootstrap: str, timeout: float = 5.0, security: Mapping[str, str] | None = None
) -> None:
    """Raise :class:`ServiceUnavailable` unless the broker at ``bootstrap`` answers.

    ``security`` holds librdkafka ``security.*``/``sasl.*``/``ssl.*`` options
    (``streams.security.librdkafka_security``).
    """
    try:
        admin = _admin(bootstrap, security)
    except KafkaException as exc:
        raise ServiceUnavailable("Kafka", bootstrap, KAFKA_SETTING, _kafka_reason(exc)) from None
    _metadata(admin, bootstrap, timeout)


def check_redis(url: str, timeout: float = 3.0, **options: Any) -> None:
    """Raise :class:`ServiceUnavailable` unless the Redis at ``url`` answers PING.

    ``options`` are ``streams.security.redis_options`` (credentials, TLS CA).
    """
    address = mask_url(url)
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, **options
        )
    except ValueError as exc:
        raise ServiceUnavailable("Redis", address, REDIS_SETTING, mask_url(str(exc))) from None
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = mask_url(str(exc))
        if isinstance(exc, redis.AuthenticationError) or "authenticat" in reason.lower():
            setting = f"{REDIS_SETTING} or {REDIS_AUTH_SETTINGS}"
            raise ServiceUnavailable("Redis", address, setting, reason, "refused us") from None
        raise ServiceUnavailable("Redis", address, REDIS_SETTING, reason) from None
    finally:
        client.close()


def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    timeout: float = 15.0,
    replication_factor: int = -1,
    security: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the missing topics of ``specs``, verify every partition count, return those created.

    ``replication_factor=-1`` lets the broker apply its default. Raises
    :class:`TopicMismatch` when an existing topic has another partition count.
    """
    wanted = _by_name(specs)
    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap, security)
    existing = _metadata(admin, bootstrap, timeout).topics
    missing = [spec for name, spec in wanted.items() if name not in existing]
    created = _create(admin, missing, replication_factor, timeout)
    _verify(admin, bootstrap, wanted, deadline)
    return created


def _by_name(specs: Iterable[TopicSpec]) -> dict[str, TopicSpec]:
    wanted: dict[str, TopicSpec] = {}
    for spec in specs:
        seen = wanted.setdefault(spec.name, spec)
        if seen.partitions != spec.partitions or seen.config != spec.config:
            raise TopicError(spec.name, f"topic {spec.name!r} is specified twice, differently")
    return wanted


def _create(
    admin: AdminClient, specs: list[TopicSpec], replication_factor: int, timeout: float
) -> list[str]:
    if not specs:
        return []
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=replication_factor,
            config=s.config,
        )
        for s in specs
    ]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    created = []
    for spec in specs:
        try:
            futures[spec.name].result()
        except KafkaException as exc:
            err = exc.args[0]
            # Another worker may have created it between our listing and our request.
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TopicError(
                spec.name, f"cannot create topic {spec.name!r}: {_kafka_reason(exc)}"
            ) from None
        created.append(spec.name)
    return created


def _verify(
    admin: AdminClient, bootstrap: str, wanted: dict[str, TopicSpec], deadline: float
) -> None:
    # Metadata of a just-created topic can lag on a real cluster: wait for it, but fail at
    # once on a topic whose partition count is visible and wrong.
    while True:
        remaining = max(deadline - time.monotonic(), 0.5)
        topics = _metadata(admin, bootstrap, remaining).topics
        pending = []
        for name, spec in wanted.items():
            meta = topics.get(name)
            if meta is None or meta.error is not None or not meta.partitions:
                pending.append(name)
            elif len(meta.partitions) != spec.partitions:
                raise TopicMismatch(name, spec.partitions, len(meta.partitions))
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TopicError(pending[0], f"topics not visible on {bootstrap} in time: {pending}")
        time.sleep(0.1)


def topics_named(
    bootstrap: str,
    prefix: str,
    timeout: float = 15.0,
    security: Mapping[str, str] | None = None,
) -> list[str]:
    """The broker's topics whose names start with ``prefix``."""
    try:
        listed = _admin(bootstrap, security).list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise TopicError(prefix, f"cannot list topics: {_kafka_reason(exc)}") from None
    return sorted(name for name in listed if name.startswith(prefix))


def delete_topics(
    bootstrap: str,
    names: Iterable[str],
    timeout: float = 15.0,
    security: Mapping[str, str] | None = None,
) -> list[str]:
    """Delete the named topics (absent ones are skipped); return the names deleted."""
    names = list(dict.fromkeys(names))
    if not names:
        return []
    admin = _admin(bootstrap, security)
    futures = admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout)
    deleted = []
    for name in names:
        try:
            futures[name].result()
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue
            raise TopicError(name, f"cannot delete topic {name!r}: {_kafka_reason(exc)}") from None
        deleted.append(name)
    return deleted


def delete_group(
    bootstrap: str,
    group: str,
    timeout: float = 15.0,
    security: Mapping[str, str] | None = None,
) -> bool:
    """Delete consumer group ``group`` and its committed offsets; ``False`` if it has none.

    Raises :class:`TopicError` when the broker refuses, e.g. while the group has members.
    """
    admin = _admin(bootstrap, security)
    future = admin.delete_consumer_groups([group], request_timeout=timeout)[group]
    try:
        future.result()
    except KafkaException as exc:
        err = exc.args[0]
        if isinstance(err, KafkaError) and err.code() == KafkaError.GROUP_ID_NOT_FOUND:
            return False
        raise TopicError(
            group, f"cannot delete consumer group {group!r}: {_kafka_reason(exc)}"
        ) from None
    return True
