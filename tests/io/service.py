"""Run `anomalyd run` as a real subprocess against a test broker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from anomalyd.kafkatools.admin import consume_all, ensure_topics

INPUTS = ["orders", "inventory", "payments", "complaints", "operator-actions"]
OUTPUTS = ["alerts", "alerts-shadow", "breaker-commands", "dead-letter"]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Service:
    """One anomalyd service with its own topic names, group and state dir."""

    def __init__(
        self,
        bootstrap: str,
        tmp: Path,
        rules: str | Path = "rules",
        partitions: int = 4,
        security: dict | None = None,
        **env: str,
    ):
        """``security``: kafka client settings for the harness's own topic
        creation and reads (the service takes its own from ``env``)."""
        self.bootstrap = bootstrap
        self.security = security
        self.tag = uuid.uuid4().hex[:8]
        self.topics = {t: f"{t}-{self.tag}" for t in INPUTS + OUTPUTS}
        self.tmp = tmp
        self.rules = Path(rules)
        self.port = free_port()
        self.env = {
            **os.environ,
            "ANOMALYD_BOOTSTRAP_SERVERS": bootstrap,
            "ANOMALYD_GROUP_ID": f"g-{self.tag}",
            "ANOMALYD_STATE_DIR": str(tmp / f"state-{self.tag}"),
            "ANOMALYD_METRICS_PORT": str(self.port),
            "ANOMALYD_RULES_DIR": str(self.rules),
            "ANOMALYD_CHECKPOINT_INTERVAL": "1s",
            "ANOMALYD_RELOAD_INTERVAL": "500ms",
            "ANOMALYD_PARTITIONS": str(partitions),
            **{f"ANOMALYD_TOPIC_{k.upper().replace('-', '_')}": v for k, v in self.topics.items()},
            **env,
        }
        # The settings' names for these two (an unknown ANOMALYD_ name is refused).
        del self.env["ANOMALYD_TOPIC_BREAKER_COMMANDS"]
        self.env["ANOMALYD_TOPIC_COMMANDS"] = self.topics["breaker-commands"]
        self.env["ANOMALYD_TOPIC_ALERTS_SHADOW"] = self.topics["alerts-shadow"]
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        ensure_topics(bootstrap, {t: partitions for t in self.topics.values()}, security=security)

    def twin(self) -> "Service":
        """Another worker of the same service: same topics, group and settings,
        its own process, metrics port and log (scale-out tests)."""
        other = object.__new__(Service)
        other.__dict__.update(self.__dict__)
        other.port = free_port()
        other.env = {
            **self.env,
            "ANOMALYD_METRICS_PORT": str(other.port),
            "ANOMALYD_STATE_DIR": str(self.tmp / f"state-{self.tag}-{other.port}"),
        }
        other.proc, other.logs = None, []
        return other

    def start(self) -> "Service":
        log = self.tmp / f"run-{self.tag}-{self.port}-{len(self.logs)}.log"
        self.logs.append(log)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "anomalyd", "run"], env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT
        )
        return self

    def log(self) -> str:
        return "\n".join(p.read_text() for p in self.logs)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        return sum(
            float(ln.rsplit(" ", 1)[1])
            for ln in text.splitlines()
            if ln.startswith(name + "{") or ln.startswith(name + " ")
        )

    def processed(self) -> float:
        return self.metric("anomalyd_events_processed_lifetime")  # counters restart with the process

    def wait(self, cond, timeout: float, what: str, every: float = 0.2) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(
                    f"service exited ({self.proc.returncode}) while waiting for {what}:\n{self.log()[-3000:]}"
                )
            if cond():
                return
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-3000:]}")

    def wait_ready(self, timeout: float = 30) -> None:
        self.wait(lambda: self.get("/readyz")[0] == 200, timeout, "readiness")

    def wait_processed(self, n: int, timeout: float = 60) -> None:
        self.wait(lambda: self.processed() >= n, timeout, f"{n} records processed")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return None
        return self.proc.returncode if self.proc else None

    def outputs(self, idle_s: float = 1.5, timeout_s: float = 60) -> dict[str, list[dict]]:
        """Every output record so far: read until nothing new came for
        ``idle_s``. (An overall cap of 1.5 s once cut reads short on a loaded
        CI machine and looked like lost alerts.)"""
        recs = consume_all(
            self.bootstrap,
            [self.topics[t] for t in OUTPUTS],
            timeout_s,
            security=self.security,
            idle_s=idle_s,
            first_record_wait_s=max(idle_s, 3.0),
        )
        back = {v: k for k, v in self.topics.items()}
        out: dict[str, list[dict]] = {t: [] for t in OUTPUTS}
        for topic, _p, _o, key, value in recs:
            rec = json.loads(value)
            rec["_key"] = key.decode() if isinstance(key, bytes) else key
            out[back[topic]].append(rec)
        return out
