"""Surfaces: settings, metrics and health HTTP (the CLI lives in anomalyd.cli)."""
