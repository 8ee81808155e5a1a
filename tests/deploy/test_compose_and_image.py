"""deploy/compose/compose.yaml, the Dockerfile and .dockerignore, checked
without a Docker engine: the compose file against the Compose Specification's
JSON schema (shipped in the check-jsonschema package), `docker compose config`
when the compose plugin exists, and the build context that .dockerignore leaves."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from anomalyd.surfaces.settings import Settings

from .helpers import DEPLOY, ROOT

COMPOSE = DEPLOY / "compose" / "compose.yaml"
SETTINGS = {f"ANOMALYD_{n.upper()}" for n in Settings.model_fields}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_schema() -> dict | None:
    try:
        dist = importlib.metadata.distribution("check-jsonschema")
    except importlib.metadata.PackageNotFoundError:
        return None
    p = Path(dist.locate_file("check_jsonschema/builtin_schemas/vendor/compose-spec.json"))
    return json.loads(p.read_text()) if p.exists() else None


def docker_compose_works() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_compose_matches_the_compose_spec_schema():
    schema = compose_schema()
    if schema is None:
        pytest.skip("compose-spec schema missing: pip install check-jsonschema==0.38.1")
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    errors = sorted(cls(schema).iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.skipif(
    not docker_compose_works(), reason="`docker compose` plugin missing (no compose v2 package in Debian bookworm)"
)
def test_docker_compose_config():
    r = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr


def test_compose_services_wire_up():
    c = compose()
    s = c["services"]
    assert {"kafka", "kafka-init", "anomalyd", "prometheus", "grafana"} <= set(s)
    # KRaft, single node, apache/kafka
    k = s["kafka"]
    assert k["image"].startswith("apache/kafka:")
    assert k["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in k
    # one-shot topics with explicit partitions, before anomalyd starts
    init = s["kafka-init"]
    script = init["command"][0]
    assert "kafka-topics.sh" in script and "--partitions" in script and init["restart"] == "no"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    d = Settings.model_construct()  # the defaults, not this machine's ANOMALYD_* environment
    for topic in list(d.input_topics()) + list(d.output_topics().values()):
        assert re.search(rf"(^|\s){re.escape(topic)}(\s|;|$)", script), f"topic {topic} not created"
    a = s["anomalyd"]
    assert a["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert (
        ROOT / "deploy" / "compose" / a["build"]["context"] / a["build"]["dockerfile"]
    ).resolve() == ROOT / "Dockerfile"
    env = a["environment"]
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert env["ANOMALYD_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["ANOMALYD_METRICS_HOST"] == "0.0.0.0"
    assert "deploy" not in a and "scale" not in a  # one replica
    # every service a depends_on names exists; every bind-mounted host path exists
    for name, svc in s.items():
        for dep in svc.get("depends_on", []):
            assert dep in s, (name, dep)
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith((".", "/")):
                assert (COMPOSE.parent / src).exists(), (name, src)
            else:
                assert src in c["volumes"], (name, src)


def test_prometheus_and_grafana_get_the_deploy_files():
    s = compose()["services"]
    mounts = {
        m.split(":")[1]: (COMPOSE.parent / m.split(":")[0]).resolve()
        for m in s["prometheus"]["volumes"]
        if m.startswith(".")
    }
    assert mounts["/etc/prometheus/anomalyd-rules.yml"] == DEPLOY / "prometheus" / "anomalyd-rules.yml"
    cfg = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert cfg["rule_files"] == ["anomalyd-rules.yml"]
    gm = {m.split(":")[0] for m in s["grafana"]["volumes"]}
    assert "../grafana/anomalyd-dashboard.json" in gm and "../grafana/provisioning/datasources" in gm


# -- Dockerfile -------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ins, _, rest = line.partition(" ")
            out.append((ins.upper(), rest.strip()))
    return out


def build_context() -> set[str]:
    """Files Docker would send as the build context (.dockerignore rules, last match wins)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            neg = line.startswith("!")
            rules.append((neg, line[1:] if neg else line))

    def excluded(rel: str) -> bool:
        ex = False
        parts = rel.split("/")
        for neg, pat in rules:
            pat = pat.rstrip("/")
            hit = False
            for i in range(1, len(parts) + 1):  # a pattern matching a parent directory matches the file
                prefix = "/".join(parts[:i])
                if fnmatch.fnmatchcase(prefix, pat) or (
                    pat.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pat[3:])
                ):
                    hit = True
                    break
            if hit:
                ex = not neg
        return ex

    files = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".venv")]
        for f in filenames:
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
            if not excluded(rel):
                files.add(rel)
    return files


def test_dockerfile_shape():
    ins = dockerfile()
    assert ins[0] == ("FROM", "python:3.11-slim")
    user = [v for i, v in ins if i == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "9108") in ins
    hc = [v for i, v in ins if i == "HEALTHCHECK"]
    assert hc and "/healthz" in hc[0]
    assert any(i == "RUN" and "pip install" in v for i, v in ins)
    envs = " ".join(v for i, v in ins if i == "ENV")
    assert set(re.findall(r"\bANOMALYD_\w+", envs)) <= SETTINGS


def test_build_context_holds_what_the_dockerfile_copies():
    ctx = build_context()
    for i, v in dockerfile():
        if i == "COPY":
            for src in v.split()[:-1]:
                assert any(f == src or f.startswith(src.rstrip("/") + "/") for f in ctx), (
                    f"COPY {src}: not in the build context"
                )
    # what `pip install` needs: pyproject, the readme it names, the package; and nothing heavy
    pyproject = (ROOT / "pyproject.toml").read_text()
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', pyproject, re.M).group(1)
    assert {"pyproject.toml", readme, "anomalyd/__init__.py", "anomalyd/surfaces/metrics.py"} <= ctx
    assert not any(
        f.startswith((".venv/", "tests/", "bench/")) or "__pycache__" in f or f.endswith("-data") for f in ctx
    )
    assert not any(p.split("/")[0].endswith("-data") for p in ctx)
