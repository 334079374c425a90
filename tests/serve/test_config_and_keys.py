"""Settings and API keys: validation, loopback-only without keys, keys never shown."""

import hashlib
import json

import pytest

from trustlab.core.exceptions import InputError
from trustlab.serve.auth import ENV_VAR, key_is_valid, load_api_keys, presented_key
from trustlab.serve.config import ServeConfig, is_loopback, redact_url

KEY = "k3y-0123456789abcdef"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.5", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.4", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_no_keys_means_loopback_only(tmp_path):
    ServeConfig(guard=tmp_path / "g", host="127.0.0.1").check_binding()
    with pytest.raises(InputError, match="refusing to serve on '0.0.0.0' without API keys"):
        ServeConfig(guard=tmp_path / "g", host="0.0.0.0").check_binding()
    digests, _ = load_api_keys(None, {ENV_VAR: KEY})
    ServeConfig(guard=tmp_path / "g", host="0.0.0.0", api_key_digests=digests).check_binding()


def test_keys_from_file_and_environment(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# service keys\n\n{KEY}\n  other-key-0123456789  \n")
    digests, source = load_api_keys(path, {ENV_VAR: f"env-key-0123456789ab, {KEY}"})
    assert len(digests) == 3 and source == f"file {path} and ${ENV_VAR}"
    assert all(len(d) == 32 for d in digests)  # digests, not keys
    assert key_is_valid(KEY, digests) and key_is_valid("other-key-0123456789", digests)
    assert key_is_valid("env-key-0123456789ab", digests)
    assert not key_is_valid(KEY[:-1], digests) and not key_is_valid(KEY + "x", digests)
    assert not key_is_valid("", digests) and not key_is_valid(None, digests)
    assert load_api_keys(None, {}) == ((), "none")


def test_key_check_compares_digests_with_every_key(monkeypatch):
    calls = []
    import hmac

    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    digests = tuple(hashlib.sha256(k.encode()).digest() for k in (KEY, "b" * 20, "c" * 20))
    assert key_is_valid(KEY, digests)
    assert len(calls) == 3  # no early exit at the first (matching) key
    assert all(len(a) == len(b) == 32 for a, b in calls)


def test_bad_key_sources_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="cannot read API keys from"):
        load_api_keys(tmp_path / "missing", {})
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(InputError, match="holds no API key"):
        load_api_keys(tmp_path / "empty", {})
    with pytest.raises(InputError, match="at least 16 characters"):
        load_api_keys(None, {ENV_VAR: "short"})


def test_presented_key_headers():
    assert presented_key({"x-api-key": "abc"}) == "abc"
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({}) is None


def test_settings_are_validated_and_described_without_secrets(tmp_path):
    digests, source = load_api_keys(None, {ENV_VAR: KEY})
    config = ServeConfig(
        guard=tmp_path / "g", api_key_digests=digests, api_keys_source=source,
        db="postgresql+psycopg://svc:hunter2-password@db.internal:5432/alarms",
    )  # fmt: skip
    described = config.describe()
    text = json.dumps(described) + repr(config)
    assert KEY not in text and "hunter2" not in text and digests[0].hex() not in text
    assert described["api_keys"] == f"1 key(s) from ${ENV_VAR}"
    assert described["db"] == "postgresql+psycopg://svc:***@db.internal:5432/alarms"
    for field, value, fragment in [
        ("max_batch", 0, "max_batch must be a positive integer"),
        ("port", 70000, "port must be an integer in 0..65535"),
        ("timeout_s", 0, "timeout_s must be a finite number > 0"),
        ("max_wait_ms", -1, "max_wait_ms must be a finite number >= 0"),
        ("drift_level", 1.5, "drift_level must be in (0, 1)"),
        ("db", "alarms.sqlite", "db must be a SQLAlchemy URL"),
    ]:
        with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            ServeConfig(guard=tmp_path / "g", **{field: value})


def test_redact_url_leaves_urls_without_password_alone():
    assert redact_url("sqlite:///a/b.sqlite") == "sqlite:///a/b.sqlite"
    assert redact_url("postgresql://user@host/db") == "postgresql://user@host/db"
