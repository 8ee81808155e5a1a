"""Start-up check of the Kafka connection with the service's own security settings.

`anomalyd run` calls :func:`check_kafka` before anything else talks to the
broker, so that a wrong password, an untrusted certificate or a mechanism the
broker does not offer stops the start at once with one line naming the
settings to look at, instead of a client library's retries and traceback.
The messages never contain the password.
"""

from __future__ import annotations

import asyncio
import ssl
import time

__all__ = ["KafkaSetupError", "check_kafka"]


class KafkaSetupError(RuntimeError):
    """Kafka cannot be used with these settings; the text says why, in one line."""


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":")
        out.append((host.strip("[]") or item, int(port) if port.isdigit() else 9092))
    return out


async def check_kafka(bootstrap: str, security: dict, timeout_s: float = 30.0) -> None:
    """Connect (and authenticate) once to a bootstrap server, as the service's
    clients will.

    Raises :class:`KafkaSetupError` at once for what retrying cannot fix (TLS
    verification, SASL authentication, a SASL mechanism the broker lacks), and
    after ``timeout_s`` for a broker that cannot be reached (it may still be
    starting, so that is retried).
    """
    from aiokafka import errors as kerr
    from aiokafka.conn import create_conn

    protocol = security.get("security_protocol", "PLAINTEXT")
    sasl = protocol.startswith("SASL_")
    who = f"{security.get('sasl_mechanism')} as {security.get('sasl_plain_username')!r}" if sasl else ""
    deadline = time.monotonic() + timeout_s
    last: str = "no attempt"
    while True:
        for host, port in _hosts(bootstrap):
            where = f"{host}:{port}"
            remaining = max(1.0, deadline - time.monotonic())
            try:
                conn = await asyncio.wait_for(
                    create_conn(
                        host,
                        port,
                        client_id="anomalyd-check",
                        request_timeout_ms=int(min(10.0, remaining) * 1000),
                        **security,
                    ),
                    timeout=min(10.0, remaining) + 1,
                )
            except ssl.SSLError as exc:
                raise KafkaSetupError(
                    f"TLS with Kafka at {where} failed: {getattr(exc, 'verify_message', None) or exc.reason or exc}. "
                    "Check ANOMALYD_SSL_CAFILE (the CA that signed the broker's certificate) and, if the broker "
                    "wants a client certificate, ANOMALYD_SSL_CERTFILE and ANOMALYD_SSL_KEYFILE"
                ) from None
            except kerr.UnsupportedSaslMechanismError as exc:
                raise KafkaSetupError(
                    f"Kafka at {where} does not offer SASL {security.get('sasl_mechanism')}: "
                    f"{exc}. Check ANOMALYD_SASL_MECHANISM"
                ) from None
            except (
                kerr.SaslAuthenticationFailed,
                kerr.AuthenticationFailedError,
                kerr.AuthenticationMethodNotSupported,
                kerr.IllegalSaslStateError,
            ) as exc:
                raise KafkaSetupError(
                    f"SASL authentication ({who}) refused by Kafka at {where}: {_text(exc)}. Check "
                    "ANOMALYD_SASL_USERNAME and the password (ANOMALYD_SASL_PASSWORD_FILE or ANOMALYD_SASL_PASSWORD)"
                ) from None
            except (OSError, asyncio.TimeoutError, kerr.KafkaConnectionError, kerr.KafkaTimeoutError) as exc:
                last = f"{where}: {_text(exc)}"
                continue
            except Exception as exc:  # e.g. a malformed SCRAM exchange (KeyError, ValueError)
                if not sasl:
                    raise
                raise KafkaSetupError(
                    f"SASL authentication ({who}) with Kafka at {where} failed: the exchange broke off "
                    f"({_text(exc)}). Check "
                    "ANOMALYD_SASL_USERNAME and the password (ANOMALYD_SASL_PASSWORD_FILE or ANOMALYD_SASL_PASSWORD)"
                ) from None
            conn.close()
            return
        if time.monotonic() >= deadline:
            raise KafkaSetupError(
                f"cannot reach Kafka at {bootstrap} within {timeout_s:.0f}s (last error: {last}). Check "
                f"ANOMALYD_BOOTSTRAP_SERVERS, and that ANOMALYD_SECURITY_PROTOCOL ({protocol}) is what the "
                "broker's listener expects"
            )
        await asyncio.sleep(0.5)


def _text(exc: BaseException) -> str:
    text, name = str(exc).strip(), type(exc).__name__
    return text if name in text else f"{name}: {text}" if text else name
