from pathlib import Path

import pytest

from qa.config import Settings
from qa.errors import UsageError


def test_environment_then_flags(monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "7")
    monkeypatch.setenv("QA_INDEX_DIR", "/tmp/some-index")
    assert Settings.load().top_k == 7
    assert Settings.load().index_dir == Path("/tmp/some-index")
    assert Settings.load(top_k=3).top_k == 3  # a flag beats the environment


def test_bad_values_say_what_to_do(monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "many")
    with pytest.raises(UsageError, match="whole number"):
        Settings.load()
    monkeypatch.delenv("QA_TOP_K")
    with pytest.raises(UsageError, match="QA_CHUNK_MAX"):
        Settings.load(chunk_size=500, chunk_max=400)


def test_a_changed_copy_is_checked_like_loaded_settings():
    settings = Settings.load()
    assert settings.with_(top_k=3).top_k == 3
    with pytest.raises(UsageError, match="too small"):
        settings.with_(chunk_size=10)
    with pytest.raises(UsageError, match="QA_CHUNK_MAX"):
        settings.with_(chunk_max=settings.chunk_size - 1)


def test_uploads_belong_to_the_web_chat_but_live_in_the_index_folder():
    settings = Settings.load(index_dir="/srv/qa-index")
    assert settings.uploads_dir == Path("/srv/qa-index") / "uploads"
