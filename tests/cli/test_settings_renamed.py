"""Settings renamed to Kafka Streams' words in 0.2.0: the old names still
work for one release, with a warning naming the new one."""

from __future__ import annotations

from anomalyd.surfaces.settings import DEPRECATED, Settings, deprecated_settings, unknown_settings


def test_old_names_still_set_the_renamed_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("ANOMALYD_TOPIC_ROUTED", "old-routed")
    monkeypatch.setenv("ANOMALYD_TOPIC_STATE", "old-state")
    monkeypatch.setenv("ANOMALYD_SNAPSHOT_INTERVAL", "2s")
    s = Settings()
    assert (s.topic_repartition, s.topic_checkpoint_store, s.checkpoint_interval) == ("old-routed", "old-state", "2s")
    assert unknown_settings() == []  # accepted, not refused as unknown
    assert deprecated_settings() == [
        "ANOMALYD_TOPIC_ROUTED is deprecated (renamed ANOMALYD_TOPIC_REPARTITION; the old name goes in 0.3.0)",
        "ANOMALYD_TOPIC_STATE is deprecated (renamed ANOMALYD_TOPIC_CHECKPOINT_STORE; the old name goes in 0.3.0)",
        "ANOMALYD_SNAPSHOT_INTERVAL is deprecated (renamed ANOMALYD_CHECKPOINT_INTERVAL; the old name goes in 0.3.0)",
    ]


def test_the_new_name_wins_and_the_warning_says_so(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ANOMALYD_TOPIC_ROUTED=old\n")
    monkeypatch.setenv("ANOMALYD_TOPIC_REPARTITION", "new")
    assert Settings().topic_repartition == "new"
    assert deprecated_settings() == [
        "ANOMALYD_TOPIC_ROUTED is deprecated (renamed ANOMALYD_TOPIC_REPARTITION; "
        "the old name goes in 0.3.0); ignored, ANOMALYD_TOPIC_REPARTITION is given"
    ]


def test_defaults_and_keywords_are_unchanged(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for old in DEPRECATED:
        monkeypatch.delenv(old, raising=False)
    s = Settings()
    # The internal topics keep their names: a running deployment's checkpoints point into them.
    assert (s.topic_repartition, s.topic_checkpoint_store, s.checkpoint_interval) == (
        "anomalyd-routed",
        "anomalyd-state",
        "5s",
    )
    assert Settings(checkpoint_interval="1s").checkpoint_interval == "1s"
