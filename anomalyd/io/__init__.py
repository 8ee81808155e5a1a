"""Kafka I/O helpers: embedded Tansu broker and synchronous admin/produce/consume tools."""
