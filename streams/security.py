"""Security settings mapped onto each client's own option names (no client imported here).

One source (``Settings``), three vocabularies: librdkafka (the producer, the admin client,
the lag probe and the dead-letter replay), aiokafka through Faust (built in
``agents.kafka_security`` from :func:`kafka_tls_files`), and redis-py.
"""

from __future__ import annotations

from typing import Any

from streams.settings import Settings


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """``security.*``, ``sasl.*`` and ``ssl.*`` options of a confluent-kafka client."""
    protocol = settings.kafka_security_protocol
    config = {"security.protocol": protocol.lower()}
    if protocol.startswith("SASL_"):
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_sasl_username,
            "sasl.password": settings.kafka_sasl_password,
        }
    optional = {
        "ssl.ca.location": settings.kafka_ssl_cafile,
        "ssl.certificate.location": settings.kafka_ssl_certfile,
        "ssl.key.location": settings.kafka_ssl_keyfile,
        "ssl.key.password": settings.kafka_ssl_key_password,
    }
    return config | {k: v for k, v in optional.items() if v}


def kafka_tls_files(settings: Settings) -> dict[str, str] | None:
    """CA, certificate and key files of the Kafka TLS context, or ``None`` without TLS."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return {
        "cafile": settings.kafka_ssl_cafile,
        "certfile": settings.kafka_ssl_certfile,
        "keyfile": settings.kafka_ssl_keyfile,
        "password": settings.kafka_ssl_key_password,
    }


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword options of ``redis.Redis.from_url``; credentials in the URL take precedence."""
    options: dict[str, Any] = {}
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password:
        options["password"] = settings.redis_password
    if settings.redis_ssl_cafile:
        options["ssl_ca_certs"] = settings.redis_ssl_cafile
    return options
