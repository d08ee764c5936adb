"""Faust (aiokafka) credentials and the TLS context built from the security settings."""

from __future__ import annotations

import ssl
from typing import Any

import faust
from faust.types.auth import CredentialsT

from streams.security import kafka_tls_files
from streams.settings import Settings, SettingsError, env_name


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The broker TLS context, or ``None`` without TLS; a bad file names its variable."""
    files = kafka_tls_files(settings)
    if files is None:
        return None
    try:
        context = ssl.create_default_context(cafile=files["cafile"] or None)
    except (OSError, ssl.SSLError) as exc:
        raise _unreadable("kafka_ssl_cafile", settings.kafka_ssl_cafile, exc) from None
    if files["certfile"]:
        try:
            context.load_cert_chain(
                files["certfile"], files["keyfile"] or None, files["password"] or None
            )
        except (OSError, ssl.SSLError) as exc:
            raise _unreadable("kafka_ssl_certfile", settings.kafka_ssl_certfile, exc) from None
    return context


def _unreadable(name: str, path: str, exc: Exception) -> SettingsError:
    return SettingsError(f"{env_name(name)}={path!r} cannot be used: {exc}")


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """``broker_credentials`` of the Faust app: SASL (PLAIN/SCRAM) and/or TLS, or ``None``."""
    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings)
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword options of a plain aiokafka client with the same security as the Faust app."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return options
