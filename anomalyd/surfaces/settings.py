"""Service settings: `ANOMALYD_*` environment variables (or a .env file),
overridden by `anomalyd run` flags. Secrets may come from files
(`ANOMALYD_SASL_PASSWORD_FILE`) and are never logged."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Mapping

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..engine.actions import OPERATOR
from ..engine.timeutil import parse_duration

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# Settings renamed to Kafka Streams' words in 0.2.0: the old names are still
# read, with a warning (deprecated_settings), until 0.3.0 removes them.
DEPRECATED = {
    "ANOMALYD_TOPIC_ROUTED": "ANOMALYD_TOPIC_REPARTITION",
    "ANOMALYD_TOPIC_STATE": "ANOMALYD_TOPIC_CHECKPOINT_STORE",
    "ANOMALYD_SNAPSHOT_INTERVAL": "ANOMALYD_CHECKPOINT_INTERVAL",
}


def _renamed(field: str, default: str, description: str) -> Any:
    """A setting read under its name (keyword or ANOMALYD_ variable) or its deprecated one."""
    var = f"ANOMALYD_{field.upper()}"
    old = next(o for o, n in DEPRECATED.items() if n == var)
    return Field(default, description=description, validation_alias=AliasChoices(field, var, old))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANOMALYD_", env_file=".env", extra="ignore", populate_by_name=True)

    # Kafka. No bootstrap servers: start the embedded broker.
    bootstrap_servers: str | None = Field(None, description="host:port[,host:port]; unset = embedded broker")
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 9092
    group_id: str = "anomalyd"
    client_id: str = "anomalyd"
    partitions: int = Field(4, description="partitions for topics anomalyd creates")
    create_topics: bool = True
    session_timeout_ms: int = Field(6000, description="consumer group session; group joins take about half")
    shards: int = Field(
        0,
        description="0: one worker reads every input partition (fastest for one replica); "
        "N > 0: scale-out mode, groups hashed over N shards that any number of workers share",
    )
    # The internal topics keep their names of 0.1.0: a running scale-out
    # deployment's shard checkpoints point into them.
    topic_repartition: str = _renamed(
        "topic_repartition", "anomalyd-routed", "internal repartition topic: events re-keyed by group (scale-out mode)"
    )
    topic_checkpoint_store: str = _renamed(
        "topic_checkpoint_store",
        "anomalyd-state",
        "internal checkpoint store: shard checkpoints, compacted (scale-out mode)",
    )

    topic_orders: str = "orders"
    topic_inventory: str = "inventory"
    topic_payments: str = "payments"
    topic_complaints: str = "complaints"
    topic_operator_actions: str = Field(
        "operator-actions", description="operator actions on breakers and alerts (an input, read in event time)"
    )
    topic_alerts: str = "alerts"
    topic_alerts_shadow: str = "alerts-shadow"
    topic_commands: str = "breaker-commands"
    topic_dead_letter: str = "dead-letter"

    # Security (external Kafka).
    security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # Engine.
    rules_dir: Path = Path("rules")
    allowed_lateness: str = "1m"
    idle_timeout: str = "1h"
    max_groups: int = 500_000
    max_future_skew: str = "1d"

    # State and surfaces.
    state_dir: Path = Field(Path("state"), description="engine snapshots (one file per group id)")
    checkpoint_interval: str = _renamed("checkpoint_interval", "5s", "how often state and offsets are checkpointed")
    metrics_host: str = Field("127.0.0.1", description="bind address of /metrics, /healthz, /readyz")
    metrics_port: int = 9108
    console_token_file: Path | None = Field(
        None, description="bearer token of the operators' actions (API and console); unset = read-only"
    )
    reload_interval: str = Field("2s", description="how often the rules directory is checked for changes")
    log_alerts: bool = True
    alertmanager_url: str | None = Field(None, description="forward alerts to Alertmanager's v2 API (off when unset)")
    partition_idle_timeout: str = Field(
        "500ms", description="wall-clock wait before a caught-up partition stops holding back event time"
    )
    partition_live_delay: str = Field(
        "50ms",
        description="live traffic (ts within 10 s of the wall clock): a caught-up partition holds event time back only this far behind the wall clock; 0ms = wait for its next event or the idle timeout",
    )

    @field_validator("security_protocol")
    @classmethod
    def _protocol(cls, v: str) -> str:
        v = v.strip().upper()
        if v not in PROTOCOLS:
            raise ValueError(f"{v!r} is not one of {', '.join(PROTOCOLS)}")
        return v

    @field_validator("sasl_mechanism")
    @classmethod
    def _mechanism(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip().upper()
        if v not in MECHANISMS:
            raise ValueError(f"{v!r} is not one of {', '.join(MECHANISMS)}")
        return v

    @field_validator("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _readable(cls, v: Path | None) -> Path | None:
        if v is not None:
            try:
                with open(v, "rb"):
                    pass
            except OSError as exc:
                raise ValueError(f"cannot read {v}: {exc.strerror}") from None
        return v

    @model_validator(mode="after")
    def _security(self) -> "Settings":
        """SASL settings without a SASL protocol (or the reverse) would connect
        unauthenticated or not at all: refuse them at start, by name."""
        sasl = self.security_protocol.startswith("SASL_")
        if sasl:
            missing = [
                n
                for n, v in (
                    ("ANOMALYD_SASL_MECHANISM", self.sasl_mechanism),
                    ("ANOMALYD_SASL_USERNAME", self.sasl_username),
                    (
                        "ANOMALYD_SASL_PASSWORD_FILE or ANOMALYD_SASL_PASSWORD",
                        self.sasl_password_file or self.sasl_password,
                    ),
                )
                if not v
            ]
            if missing:
                raise ValueError(f"ANOMALYD_SECURITY_PROTOCOL={self.security_protocol} needs {', '.join(missing)}")
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password or self.sasl_password_file:
            raise ValueError(
                "ANOMALYD_SASL_* settings are given but ANOMALYD_SECURITY_PROTOCOL is "
                f"{self.security_protocol}: use SASL_SSL (or SASL_PLAINTEXT)"
            )
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError(
                "ANOMALYD_SSL_* settings are given but ANOMALYD_SECURITY_PROTOCOL is "
                f"{self.security_protocol}: use SSL (or SASL_SSL)"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("ANOMALYD_SSL_KEYFILE needs ANOMALYD_SSL_CERTFILE (the client certificate)")
        return self

    def security_summary(self) -> str:
        """How anomalyd connects, for messages: never the password."""
        out = self.security_protocol
        if self.sasl_mechanism:
            out += f", {self.sasl_mechanism} as {self.sasl_username!r}"
        return out

    @field_validator("max_groups", "partitions", "session_timeout_ms")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be a whole number >= 1, got {v}")
        return v

    @field_validator("shards")
    @classmethod
    def _nonneg(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must be a whole number >= 0 (0: no scale-out), got {v}")
        return v

    @field_validator("embedded_port", "metrics_port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 0 <= v <= 65535:
            raise ValueError(f"must be a port number 0..65535, got {v}")
        return v

    @field_validator("checkpoint_interval", "reload_interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError(f"must be longer than 0, got {v!r}")
        return v

    @field_validator(
        "allowed_lateness",
        "idle_timeout",
        "max_future_skew",
        "checkpoint_interval",
        "reload_interval",
        "partition_idle_timeout",
        "partition_live_delay",
    )
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    def ms(self, name: str) -> int:
        return parse_duration(getattr(self, name))

    def input_topics(self) -> dict[str, str]:
        """topic name -> event source."""
        return {
            self.topic_orders: "orders",
            self.topic_inventory: "inventory",
            self.topic_payments: "payments",
            self.topic_complaints: "complaints",
            self.topic_operator_actions: OPERATOR,
        }

    def output_topics(self) -> dict[str, str]:
        """engine output kind -> topic name."""
        return {
            "alerts": self.topic_alerts,
            "alerts-shadow": self.topic_alerts_shadow,
            "breaker-commands": self.topic_commands,
            "dead-letter": self.topic_dead_letter,
        }

    def password(self) -> str | None:
        """The SASL password: the file wins over the variable. A trailing
        newline (as `echo` writes) is not part of it; other spaces are."""
        if self.sasl_password_file:
            return self.sasl_password_file.read_text(encoding="utf-8").rstrip("\r\n")
        return self.sasl_password.get_secret_value() if self.sasl_password else None

    def kafka_security(self) -> dict:
        """Keyword arguments for Kafka clients: aiokafka (the service) and
        kafka-python (anomalyd.kafkatools.admin) take the same names."""
        kw: dict = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kw.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.password(),
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
            )
        return kw


# ANOMALYD_* names that are not settings: read by the test suite and the
# replay progress bar, and those Kubernetes injects for a Service named
# `anomalyd` (deploy/k8s/service.yaml): ANOMALYD_SERVICE_HOST, ANOMALYD_PORT_9108_TCP, ...
NOT_SETTINGS = {"ANOMALYD_PROGRESS_MIN_BYTES", "ANOMALYD_TEST_OUTAGE_S", "ANOMALYD_FUZZ_SCALE"}
_SERVICE_LINKS = re.compile(
    r"^ANOMALYD_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$"
)


def _known(name: str) -> bool:
    return (
        name in NOT_SETTINGS
        or name in DEPRECATED
        or bool(_SERVICE_LINKS.match(name))
        or name[len("ANOMALYD_") :].lower() in Settings.model_fields
    )


def _hint(name: str) -> str:
    names = [f"ANOMALYD_{f.upper()}" for f in Settings.model_fields] + list(DEPRECATED)
    hint = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return (
        f"; did you mean {DEPRECATED.get(hint[0], hint[0])}?"
        if hint
        else " (the settings are listed in README: Configuration)"
    )


def env_file_lines(path: str | Path = ".env") -> dict[str, tuple[int, int]]:
    """ANOMALYD_* names in a .env file -> (line, column) of the name."""
    out: dict[str, tuple[int, int]] = {}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^(\s*(?:export\s+)?)(ANOMALYD_\w*)\s*=", line, re.IGNORECASE)
        if m:
            out[m.group(2).upper()] = (n, len(m.group(1)) + 1)
    return out


def unknown_settings(environ: Mapping[str, str] | None = None, env_file: str | Path = ".env") -> list[str]:
    """A line for each ANOMALYD_* name in the environment or the .env file
    that is no setting (a typo would otherwise be ignored silently): the
    .env ones as FILE:LINE:COL, each with a did-you-mean."""
    env = os.environ if environ is None else environ
    out = []
    for name, (line, col) in env_file_lines(env_file).items():
        if not _known(name):
            out.append(f"{env_file}:{line}:{col}: unknown setting {name}{_hint(name)}")
    for name in sorted(env):
        if name.upper().startswith("ANOMALYD_") and not _known(name.upper()):
            out.append(f"{name} (environment): unknown setting{_hint(name.upper())}")
    return out


def deprecated_settings(environ: Mapping[str, str] | None = None, env_file: str | Path = ".env") -> list[str]:
    """A warning for each deprecated ANOMALYD_* name in the environment or
    the .env file, naming its replacement (which wins when both are given)."""
    env = os.environ if environ is None else environ
    given = {n.upper() for n in env} | set(env_file_lines(env_file))
    return [
        f"{old} is deprecated (renamed {new}; the old name goes in 0.3.0)"
        + (f"; ignored, {new} is given" if new in given else "")
        for old, new in DEPRECATED.items()
        if old in given
    ]
