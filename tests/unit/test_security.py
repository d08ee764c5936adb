"""Security settings: parsing, contradictions named, mapping onto each client, masking."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import faust
import pytest

from agents.kafka_security import faust_credentials, kafka_ssl_context
from streams.security import kafka_tls_files, librdkafka_security, redis_options
from streams.settings import SettingsError, load_settings, mask_url

SASL_SSL = {
    "KAPPAREC_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "KAPPAREC_KAFKA_SASL_MECHANISM": "scram-sha-512",
    "KAPPAREC_KAFKA_SASL_USERNAME": "svc-kapparec",
    "KAPPAREC_KAFKA_SASL_PASSWORD": "kafka-s3cret",
    "KAPPAREC_KAFKA_SSL_CAFILE": certifi.where(),
}


def test_plaintext_by_default() -> None:
    s = load_settings(env={})
    assert librdkafka_security(s) == {"security.protocol": "plaintext"}
    assert kafka_tls_files(s) is None
    assert redis_options(s) == {}
    assert faust_credentials(s) is None


def test_sasl_ssl_maps_onto_librdkafka() -> None:
    s = load_settings(env=SASL_SSL)
    assert librdkafka_security(s) == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc-kapparec",
        "sasl.password": "kafka-s3cret",
        "ssl.ca.location": certifi.where(),
    }


def test_sasl_ssl_maps_onto_faust() -> None:
    creds = faust_credentials(load_settings(env=SASL_SSL))
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password) == ("svc-kapparec", "kafka-s3cret")
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.protocol.value == "SASL_SSL" and isinstance(creds.ssl_context, ssl.SSLContext)
    assert "kafka-s3cret" not in repr(creds)


def test_sasl_plaintext_has_no_tls() -> None:
    env = {k: v for k, v in SASL_SSL.items() if "SSL_CAFILE" not in k}
    env["KAPPAREC_KAFKA_SECURITY_PROTOCOL"] = "SASL_PLAINTEXT"
    creds = faust_credentials(load_settings(env=env))
    assert isinstance(creds, faust.SASLCredentials) and creds.ssl_context is None
    assert creds.protocol.value == "SASL_PLAINTEXT"


def test_tls_only_with_client_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    env = {
        "KAPPAREC_KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAPPAREC_KAFKA_SSL_CAFILE": str(cert),
        "KAPPAREC_KAFKA_SSL_CERTFILE": str(cert),
        "KAPPAREC_KAFKA_SSL_KEYFILE": str(key),
    }
    s = load_settings(env=env)
    assert librdkafka_security(s) == {
        "security.protocol": "ssl",
        "ssl.ca.location": str(cert),
        "ssl.certificate.location": str(cert),
        "ssl.key.location": str(key),
    }
    assert isinstance(faust_credentials(s), faust.SSLCredentials)


def test_unreadable_tls_file_names_its_variable(tmp_path: Path) -> None:
    env = {"KAPPAREC_KAFKA_SECURITY_PROTOCOL": "SSL", "KAPPAREC_KAFKA_SSL_CAFILE": "/nope.pem"}
    with pytest.raises(SettingsError, match="KAPPAREC_KAFKA_SSL_CAFILE"):
        kafka_ssl_context(load_settings(env=env))
    garbage = tmp_path / "cert.pem"
    garbage.write_text("not a certificate")
    env |= {
        "KAPPAREC_KAFKA_SSL_CAFILE": certifi.where(),
        "KAPPAREC_KAFKA_SSL_CERTFILE": str(garbage),
    }
    with pytest.raises(SettingsError, match="KAPPAREC_KAFKA_SSL_CERTFILE"):
        kafka_ssl_context(load_settings(env=env))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KAPPAREC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAPPAREC_KAFKA_SASL_USERNAME"),
        (
            {"KAPPAREC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAPPAREC_KAFKA_SASL_USERNAME": "u"},
            "KAPPAREC_KAFKA_SASL_PASSWORD",
        ),
        ({"KAPPAREC_KAFKA_SASL_PASSWORD": "p"}, "KAPPAREC_KAFKA_SASL_PASSWORD"),
        ({"KAPPAREC_KAFKA_SSL_CAFILE": "/ca.pem"}, "KAPPAREC_KAFKA_SSL_CAFILE"),
        (
            {"KAPPAREC_KAFKA_SECURITY_PROTOCOL": "SSL", "KAPPAREC_KAFKA_SSL_KEYFILE": "/k.pem"},
            "KAPPAREC_KAFKA_SSL_KEYFILE",
        ),
        ({"KAPPAREC_KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAPPAREC_KAFKA_SECURITY_PROTOCOL"),
        ({"KAPPAREC_KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAPPAREC_KAFKA_SASL_MECHANISM"),
        (
            {"KAPPAREC_REDIS_URL": "redis://h:6379/0", "KAPPAREC_REDIS_SSL_CAFILE": "/ca.pem"},
            "KAPPAREC_REDIS_SSL_CAFILE",
        ),
    ],
)
def test_contradictions_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(env=env)


def test_redis_auth_and_tls_options() -> None:
    s = load_settings(
        env={
            "KAPPAREC_REDIS_URL": "rediss://cache:6380/0",
            "KAPPAREC_REDIS_USERNAME": "app",
            "KAPPAREC_REDIS_PASSWORD": "redis-s3cret",
            "KAPPAREC_REDIS_SSL_CAFILE": "/etc/ssl/redis-ca.pem",
        }
    )
    assert redis_options(s) == {
        "username": "app",
        "password": "redis-s3cret",
        "ssl_ca_certs": "/etc/ssl/redis-ca.pem",
    }


def test_no_secret_in_repr() -> None:
    s = load_settings(
        env={
            **SASL_SSL,
            "KAPPAREC_KAFKA_SSL_KEY_PASSWORD": "key-s3cret",
            "KAPPAREC_REDIS_URL": "redis://app:url-s3cret@cache:6379/0",
            "KAPPAREC_REDIS_PASSWORD": "redis-s3cret",
        }
    )
    text = repr(s) + str(s)
    for secret in ("kafka-s3cret", "key-s3cret", "url-s3cret", "redis-s3cret"):
        assert secret not in text
    assert "kafka_sasl_password='***'" in text and "svc-kapparec" in text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://u:p@ss@h:6379", "redis://u:***@h:6379"),  # "@" inside a password
        ("rediss://u:pw@h a redis://:x@k", "rediss://u:***@h a redis://:***@k"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_mask_url(text: str, masked: str) -> None:
    assert mask_url(text) == masked


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
