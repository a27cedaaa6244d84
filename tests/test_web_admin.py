"""The web chat's admin side: upload names that cannot escape the uploads folder, and the password check."""

from __future__ import annotations

import pytest

from qa.config import Settings
from qa.errors import UsageError
from qa.web.admin import admin_ok, safe_name


def test_safe_name_keeps_only_a_harmless_last_component():
    allowed = {".txt", ".html", ".pdf"}
    assert safe_name("../../etc/passwd.txt", allowed) == "passwd.txt"
    assert safe_name("C:\\Users\\x\\报告 2024.TXT", allowed) == "报告_2024.txt"
    assert safe_name("..txt", allowed) == "upload.txt"
    assert safe_name("<script>.html", allowed) == "script.html"
    with pytest.raises(UsageError, match="格式不受支持"):
        safe_name("evil.sh", allowed)
    with pytest.raises(UsageError, match="格式不受支持"):
        safe_name("noext", allowed)


def test_admin_needs_a_configured_and_matching_password():
    assert not admin_ok(Settings(admin_password=""), "")
    assert not admin_ok(Settings(admin_password=""), "x")
    assert not admin_ok(Settings(admin_password="s3cret"), "s3cre")
    assert not admin_ok(Settings(admin_password="s3cret"), None)
    assert admin_ok(Settings(admin_password="s3cret"), "s3cret")
