"""Kafka security: SASL/SCRAM and TLS settings end to end, secrets kept out of
logs and /metrics, and the HTTP surface on 127.0.0.1 by default.

What a broker here can enforce (docs/security.md has the evidence):

* Tansu 0.6.0 with ``--authentication`` refuses every unauthenticated client,
  but it stores no SCRAM credentials, so it can authenticate nobody and it
  cannot speak TLS. Against it, the service must fail at once with one clear
  line: ``test_tansu_requiring_sasl_stops_the_service_with_one_clear_line``.
* Everything that needs a broker accepting a login or a TLS handshake runs
  through ``tests/io/kafka_front.py``: TLS (throwaway CA made with the openssl
  CLI) and SASL/SCRAM terminated in front of Tansu, the broker's half of the
  protocol, while the clients (aiokafka in the service, kafka-python in the
  tools) are the real ones, driven only by ``ANOMALYD_*`` settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anomalyd.broker.embedded import EmbeddedBroker
from anomalyd.kafkatools.admin import produce_jsonl
from anomalyd.surfaces.settings import Settings
from tests.io.kafka_front import KafkaFront, make_pki, server_context
from tests.io.service import Service, free_port

pytestmark = pytest.mark.kafka

PASSWORD = "Tr0ub4dor&3-not-in-any-log"
USER = "anomalyd"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    try:
        return make_pki(tmp_path_factory.mktemp("pki"))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make throwaway certificates with the openssl CLI: {exc}")


@pytest.fixture
def secured():
    """make(users=..., tls=...) -> a KafkaFront before its own Tansu broker."""
    made: list[tuple[KafkaFront, EmbeddedBroker]] = []

    def make(users: dict[str, str] | None = None, tls=None) -> KafkaFront:
        front = KafkaFront(users=users, ssl_context=tls)
        broker = EmbeddedBroker(port=0, advertised=front.address).start()
        made.append((front, broker))
        return front.start(broker.bootstrap)

    yield make
    for front, broker in made:
        front.stop()
        broker.stop()


def settings_env(**kw: str | Path) -> dict[str, str]:
    return {f"ANOMALYD_{k.upper()}": str(v) for k, v in kw.items()}


def client_security(env: dict[str, str]) -> dict:
    """The harness's own clients use the settings the service is given."""
    return Settings(**{k.removeprefix("ANOMALYD_").lower(): v for k, v in env.items()}).kafka_security()


def story(svc: Service) -> int:
    """SKU-1's stock goes negative and recovers: negative-stock fires and resolves."""
    t = svc.topics["inventory"]
    recs = [
        (
            t,
            "SKU-1",
            json.dumps(
                {"event_id": f"sec-{i}", "ts": 1781712000000 + i * 1000, "sku": "SKU-1", "available": a}
            ).encode(),
        )
        for i, a in enumerate([10, -5, 8])
    ]
    return produce_jsonl(svc.bootstrap, recs, svc.security)


def wait_alerts(svc: Service, timeout: float = 30) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}

    def done() -> bool:
        nonlocal out
        out = svc.outputs()
        return {a["status"] for a in out["alerts"]} == {"firing", "resolved"}

    svc.wait(done, timeout, "negative-stock to fire and resolve")
    return out


def cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "anomalyd", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def listen_address(port: int) -> str | None:
    """The IPv4 address a local TCP listener on ``port`` is bound to (Linux /proc)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, _, p = local.partition(":")
        if int(p, 16) == port and state == "0A":
            return ".".join(str(b) for b in reversed(bytes.fromhex(addr)))
    return None


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


# -- a broker requiring SASL/SCRAM (and TLS), the service and the tools ----------------------


def test_scram_sha_256_service_with_the_password_from_a_file(secured, tmp_path):
    front = secured(users={USER: PASSWORD})
    pw = tmp_path / "kafka-password"
    pw.write_text(PASSWORD + "\n")  # as `echo` writes it: the newline is not part of the password
    pw.chmod(0o600)
    env = settings_env(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", sasl_username=USER, sasl_password_file=pw
    )
    svc = Service(front.address, tmp_path, security=client_security(env), **env)
    svc.env.pop("ANOMALYD_METRICS_HOST", None)  # the default is what is tested
    svc.start()
    try:
        svc.wait_ready()
        assert story(svc) == 3
        out = wait_alerts(svc)
        assert [a["rule_id"] for a in out["alerts"]] == ["negative-stock", "negative-stock"]
        assert [c["action"] for c in out["breaker-commands"]] == ["open", "close"]
        status, metrics = svc.get("/metrics")
        assert status == 200 and "anomalyd_events_processed_lifetime" in metrics
        if Path("/proc/net/tcp").exists():
            assert listen_address(svc.port) == "127.0.0.1"
    finally:
        assert svc.stop() == 0
    log = svc.log()
    assert f"connected (SASL_PLAINTEXT, SCRAM-SHA-256 as '{USER}')" in log
    assert_no_secret(log, metrics)
    assert (USER, "SCRAM-SHA-256") in front.logins and front.failures == []


def test_sasl_ssl_scram_sha_512_password_from_the_environment_service_and_cli_tools(secured, pki, tmp_path):
    front = secured(users={USER: PASSWORD}, tls=server_context(pki))
    env = settings_env(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=PASSWORD,
        ssl_cafile=pki["ca.pem"],
    )
    svc = Service(front.address, tmp_path, security=client_security(env), **env)
    created = cli(["topics", "create", "--bootstrap", front.address], svc.env)
    assert created.returncode == 0, created.stderr
    assert f"{svc.topics['orders']}: 4 partitions" in created.stdout
    svc.start()
    try:
        svc.wait_ready()
        sim = cli(["simulate", "--events", "200", "--to-kafka", front.address], svc.env)
        assert sim.returncode == 0, sim.stderr
        assert f"produced 200 events to {front.address}" in sim.stderr
        svc.wait_processed(200, timeout=30)
        _, metrics = svc.get("/metrics")
    finally:
        assert svc.stop() == 0
    assert f"connected (SASL_SSL, SCRAM-SHA-512 as '{USER}')" in svc.log()
    assert_no_secret(svc.log(), metrics, created.stdout + created.stderr, sim.stdout + sim.stderr)
    assert {m for _u, m in front.logins} == {"SCRAM-SHA-512"} and front.failures == []


def test_mutual_tls_service_and_backtest_from_kafka(secured, pki, tmp_path):
    front = secured(tls=server_context(pki, require_client_cert=True))
    env = settings_env(
        security_protocol="SSL", ssl_cafile=pki["ca.pem"], ssl_certfile=pki["client.pem"], ssl_keyfile=pki["client.key"]
    )
    svc = Service(front.address, tmp_path, security=client_security(env), **env)
    svc.start()
    try:
        svc.wait_ready()
        story(svc)
        wait_alerts(svc)
    finally:
        assert svc.stop() == 0
    bt = cli(["backtest", f"kafka://{front.address}", "--rules", "rules", "--json"], svc.env)
    assert bt.returncode == 0, bt.stderr
    report = json.loads(bt.stdout)
    assert report["events"]["by_topic"] == {"inventory": 3}
    assert report["current"]["rules"]["negative-stock"]["fired"] == 1


# -- refusals: fast, one line, nothing secret ------------------------------------------------


def run_refused(bootstrap: str, tmp_path: Path, env: dict[str, str], timeout: float = 20) -> tuple[int, str, float]:
    """`anomalyd run` that must stop by itself: (exit status, output, seconds)."""
    full = {
        **os.environ,
        "ANOMALYD_BOOTSTRAP_SERVERS": bootstrap,
        "ANOMALYD_STATE_DIR": str(tmp_path / "state"),
        "ANOMALYD_METRICS_PORT": str(free_port()),
        **env,
    }
    t = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "anomalyd", "run"], env=full, capture_output=True, text=True, timeout=timeout
    )
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t


def test_a_wrong_password_stops_the_service_at_once_with_one_clear_line(secured, tmp_path):
    front = secured(users={USER: PASSWORD})
    wrong = "hunter2-wrong-" + PASSWORD[::-1]
    rc, out, took = run_refused(
        front.address,
        tmp_path,
        settings_env(
            security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", sasl_username=USER, sasl_password=wrong
        ),
    )
    assert rc == 1 and took < 15, out
    assert f"SASL authentication (SCRAM-SHA-256 as '{USER}') refused by Kafka at {front.address}" in out
    assert "invalid credentials" in out and "ANOMALYD_SASL_PASSWORD_FILE" in out and "not starting" in out
    assert "Traceback" not in out
    assert wrong not in out
    assert_no_secret(out)
    assert front.failures == [(USER, "SCRAM-SHA-256")] and front.logins == []


def test_an_untrusted_broker_certificate_stops_the_service_with_one_clear_line(secured, pki, tmp_path):
    front = secured(tls=server_context(pki))
    rc, out, took = run_refused(
        front.address, tmp_path, settings_env(security_protocol="SSL", ssl_cafile=pki["other-ca.pem"])
    )  # not the CA that signed the broker
    assert rc == 1 and took < 15, out
    assert f"TLS with Kafka at {front.address} failed" in out and "ANOMALYD_SSL_CAFILE" in out
    assert "Traceback" not in out


def test_tansu_requiring_sasl_stops_the_service_with_one_clear_line(tmp_path):
    """A real broker that requires SASL: Tansu 0.6.0 --authentication (which
    can authenticate no one; see anomalyd/broker/embedded.py)."""
    with EmbeddedBroker(port=0, authentication=True) as broker:
        rc, out, took = run_refused(
            broker.bootstrap,
            tmp_path,
            settings_env(
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_username=USER,
                sasl_password=PASSWORD,
            ),
        )
    assert rc == 1 and took < 15, out
    assert f"SASL authentication (SCRAM-SHA-512 as '{USER}') with Kafka at {broker.bootstrap} failed" in out
    assert "Traceback" not in out
    assert_no_secret(out)


# -- settings refused before any connection ----------------------------------------------------


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-512", "SASL_USERNAME": USER},
            "ANOMALYD_SECURITY_PROTOCOL=SASL_SSL needs ANOMALYD_SASL_PASSWORD_FILE or ANOMALYD_SASL_PASSWORD",
        ),
        (
            {"SASL_MECHANISM": "SCRAM-SHA-512", "SASL_USERNAME": USER, "SASL_PASSWORD": PASSWORD},
            "ANOMALYD_SASL_* settings are given but ANOMALYD_SECURITY_PROTOCOL is PLAINTEXT",
        ),
        (
            {
                "SECURITY_PROTOCOL": "SASL_SSL",
                "SASL_MECHANISM": "SCRAM-SHA-1",
                "SASL_USERNAME": USER,
                "SASL_PASSWORD": PASSWORD,
            },
            "ANOMALYD_SASL_MECHANISM: 'SCRAM-SHA-1' is not one of",
        ),
        (
            {
                "SECURITY_PROTOCOL": "SASL_SSL",
                "SASL_MECHANISM": "SCRAM-SHA-512",
                "SASL_USERNAME": USER,
                "SASL_PASSWORD_FILE": "/nonexistent/kafka-password",
            },
            "ANOMALYD_SASL_PASSWORD_FILE: cannot read /nonexistent/kafka-password: No such file or directory",
        ),
        ({"SECURITY_PROTOCOL": "TLS"}, "ANOMALYD_SECURITY_PROTOCOL: 'TLS' is not one of PLAINTEXT, SSL"),
        ({"SSL_CAFILE": __file__}, "ANOMALYD_SSL_* settings are given but ANOMALYD_SECURITY_PROTOCOL is PLAINTEXT"),
    ],
)
@pytest.mark.parametrize("argv", [["run"], ["topics", "create", "--bootstrap", "127.0.0.1:9"]])
def test_bad_security_settings_are_usage_errors_naming_the_variable(monkeypatch, capsys, env, message, argv):
    from anomalyd.cli.main import main

    for k in list(os.environ):
        if k.startswith("ANOMALYD_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(f"ANOMALYD_{k}", v)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert_no_secret(err)


def test_http_surface_defaults_to_localhost(monkeypatch):
    monkeypatch.delenv("ANOMALYD_METRICS_HOST", raising=False)
    assert Settings(_env_file=None).metrics_host == "127.0.0.1"  # and the bound socket: the SCRAM test above
