"""deploy/k8s: schema validation of the built-in kinds (kubernetes-validate,
offline, strict) and consistency checks across the manifests."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from anomalyd.surfaces.settings import Settings

from .helpers import DEPLOY

K8S = DEPLOY / "k8s"
HAS_KV = importlib.util.find_spec("kubernetes_validate") is not None
needs_kv = pytest.mark.skipif(not HAS_KV, reason="kubernetes-validate missing: pip install kubernetes-validate==1.37.0")
K8S_VERSIONS = ["1.28.0", "1.37.0"]  # oldest and newest versions checked


def docs() -> dict[tuple[str, str], dict]:
    out = {}
    for f in sorted(K8S.glob("*.yaml")):
        if f.name == "kustomization.yaml":
            continue
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                out[(d["kind"], d["metadata"]["name"])] = d
    return out


def pod_spec() -> dict:
    return docs()[("StatefulSet", "anomalyd")]["spec"]["template"]["spec"]


def container() -> dict:
    (c,) = pod_spec()["containers"]
    return c


def env() -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container()["env"]}


@needs_kv
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_builtin_kinds_validate_against_the_kubernetes_schemas(version):
    import kubernetes_validate

    checked = set()
    for (kind, _name), d in docs().items():
        if d["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: checked below
        kubernetes_validate.validate(d, version, strict=True)
        checked.add(kind)
    assert checked == {"ConfigMap", "Secret", "Service", "StatefulSet"}


def test_kustomization_lists_every_manifest():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {f.name for f in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == files


def test_one_replica_persistent_state_and_probes():
    sts = docs()[("StatefulSet", "anomalyd")]
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == "anomalyd" and ("Service", "anomalyd") in docs()
    spec = pod_spec()
    assert spec["terminationGracePeriodSeconds"] == 30
    c = container()
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert [p for p in c["ports"] if p["name"] == "metrics"][0]["containerPort"] == int(env()["ANOMALYD_METRICS_PORT"])
    assert env()["ANOMALYD_METRICS_HOST"] == "0.0.0.0"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert mounts[claim["metadata"]["name"]]["mountPath"] == env()["ANOMALYD_STATE_DIR"]
    # the rules ConfigMap is mounted as a directory (subPath mounts never see updates)
    assert mounts["rules"]["mountPath"] == env()["ANOMALYD_RULES_DIR"] and "subPath" not in mounts["rules"]
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["rules"]["configMap"]["name"] == "anomalyd-rules"


def test_sasl_password_comes_from_the_secret_file():
    c, spec = container(), pod_spec()
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    sec = vols["sasl"]["secret"]
    secret = docs()[("Secret", sec["secretName"])]
    (item,) = sec["items"]
    assert item["key"] in secret["stringData"]
    assert env()["ANOMALYD_SASL_PASSWORD_FILE"] == f"{mounts['sasl']}/{item['path']}"
    assert "ANOMALYD_SASL_PASSWORD" not in env()


def test_every_env_var_is_an_anomalyd_setting():
    fields = {f"ANOMALYD_{n.upper()}" for n in Settings.model_fields}
    unknown = {k for k in env() if k.startswith("ANOMALYD_")} - fields
    assert not unknown, f"not settings (typo?): {unknown}"


def test_configmap_rules_load(tmp_path):
    from anomalyd.engine.rules.loader import load_rules

    cm = docs()[("ConfigMap", "anomalyd-rules")]
    for name, text in cm["data"].items():
        assert name.endswith((".yaml", ".yml")), name
        (tmp_path / name).write_text(text)
    rs = load_rules(tmp_path)
    assert len(rs.enabled()) >= 1


def test_podmonitor_selects_the_pod_and_names_the_job_anomalyd():
    pm = docs()[("PodMonitor", "anomalyd")]
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    labels = docs()[("StatefulSet", "anomalyd")]["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # jobLabel: the job label comes from this pod label; the alerting rules select job="anomalyd"
    assert labels[pm["spec"]["jobLabel"]] == "anomalyd"
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["port"] in {p["name"] for p in container()["ports"]} and ep["path"] == "/metrics"
    svc = docs()[("Service", "anomalyd")]
    assert svc["spec"]["selector"].items() <= labels.items()
