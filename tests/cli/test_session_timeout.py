"""The consumer group session `anomalyd run` asks for: shorter on the
embedded broker (Tansu joins in half of it), unless SESSION_TIMEOUT_MS is set."""

from __future__ import annotations

from anomalyd.cli.run import EMBEDDED_SESSION_TIMEOUT_MS, session_timeout_ms
from anomalyd.surfaces.settings import Settings


def test_the_embedded_broker_gets_a_short_session_a_cluster_the_setting(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("ANOMALYD_SESSION_TIMEOUT_MS", raising=False)
    s = Settings()
    assert session_timeout_ms(s, embedded=True) == EMBEDDED_SESSION_TIMEOUT_MS < s.session_timeout_ms
    assert session_timeout_ms(s, embedded=False) == s.session_timeout_ms == 6000


def test_a_session_timeout_set_by_the_user_is_kept_on_the_embedded_broker(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANOMALYD_SESSION_TIMEOUT_MS", "6000")
    assert session_timeout_ms(Settings(), embedded=True) == 6000
    (tmp_path / ".env").write_text("ANOMALYD_SESSION_TIMEOUT_MS=4000\n")
    monkeypatch.delenv("ANOMALYD_SESSION_TIMEOUT_MS")
    assert session_timeout_ms(Settings(), embedded=True) == 4000
