"""Command-line surfaces."""
