"""The streaming runtime: one loop (runtime.py) with direct mode (direct.py) and
scale-out's router and shards (sharded.py) plugged in, the records it keeps
and sends (records.py), event-time ordering (ordering.py) and where
checkpoints are stored (snapshots.py, checkpoint_store.py)."""
