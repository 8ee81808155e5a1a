"""Blocking Kafka tools for the command line, tests and benches: topic admin,
bulk produce and read-to-idle consume (kafka-python), the contract's keys for
replay envelopes, and the start-up connection check. Not the streaming path
(that is anomalyd.io)."""
