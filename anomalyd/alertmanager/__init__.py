"""Forwarding alerts to Prometheus Alertmanager (optional, ANOMALYD_ALERTMANAGER_URL)."""
