"""anomalyd: rule-based anomaly detection for e-commerce event streams."""

__version__ = "0.1.0"
