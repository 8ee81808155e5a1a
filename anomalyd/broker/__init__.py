"""The embedded Kafka-compatible broker (Tansu) that `anomalyd run` starts when
no bootstrap servers are given, and that the tests and benches use."""
