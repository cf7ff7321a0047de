"""The page's sessions (issue 17 §7): sign-out revokes, Secure behind a trusted TLS proxy,
wrong keys throttled, each refusal logged without the key; metrics in a folder per service."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from lifecycle.cli.serve import metrics_dir
from lifecycle.serving.guard import RUNTIME
from lifecycle.serving.page import SESSION_COOKIE, Sessions

from .conftest import API_KEY as KEY


def sign_in(client: TestClient, key: str = KEY, **headers: str) -> object:
    return client.post("/signin", data={"key": key}, headers=headers, follow_redirects=False)


def test_sign_out_revokes_the_session_on_the_server(keyed: TestClient) -> None:
    assert sign_in(keyed).status_code == 303  # type: ignore[attr-defined]
    old = keyed.cookies[SESSION_COOKIE]
    assert KEY not in old
    assert keyed.get("/overview.json").status_code == 200
    keyed.post("/signout")
    # a copy of the old cookie (kept by a client that ignores the deletion) reads nothing
    keyed.cookies.clear()
    keyed.cookies.set(SESSION_COOKIE, old)
    assert keyed.get("/overview.json").status_code == 401
    assert keyed.get("/", follow_redirects=False).status_code == 303


def test_sessions_expire() -> None:
    sessions = Sessions(seconds=0)
    assert not sessions.valid(sessions.issue())
    live = Sessions(limit=2)
    first, second, third = live.issue(), live.issue(), live.issue()
    assert not live.valid(first) and live.valid(second) and live.valid(third)


@pytest.mark.parametrize(
    ("trust", "headers", "secure"),
    [
        (False, {}, False),
        (False, {"x-forwarded-proto": "https"}, False),  # anyone can send the header
        (True, {"x-forwarded-proto": "https"}, True),
        (True, {"forwarded": "for=10.0.0.1;proto=https"}, True),
        (True, {"x-forwarded-proto": "http"}, False),
    ],
)
def test_cookie_is_secure_behind_a_trusted_tls_proxy(
    keyed: TestClient, trust: bool, headers: dict[str, str], secure: bool
) -> None:
    RUNTIME.settings = RUNTIME.settings.model_copy(update={"trust_proxy": trust})
    response = sign_in(keyed, **headers)
    cookie = response.headers["set-cookie"]  # type: ignore[attr-defined]
    assert ("Secure" in cookie) is secure, cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_wrong_sign_ins_are_logged_then_throttled(
    keyed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    RUNTIME.settings = RUNTIME.settings.model_copy(update={"auth_attempts": 3})
    caplog.set_level(logging.INFO, logger="lifecycle.serving")
    statuses = [sign_in(keyed, f"guess-{i}").status_code for i in range(4)]  # type: ignore[attr-defined]
    assert statuses == [401, 401, 401, 429]
    throttled = sign_in(keyed)  # the right key waits too
    assert throttled.status_code == 429  # type: ignore[attr-defined]
    assert int(throttled.headers["retry-after"]) >= 1  # type: ignore[attr-defined]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("sign-in" in m and "401" in m for m in messages) == 3
    assert sum("429" in m for m in messages) == 2
    assert all(KEY not in m and "guess" not in m for m in messages)
    # the API shares the count per address: its key is refused meanwhile as well
    api = keyed.post("/predict", json={"customer_id": "x"}, headers={"X-API-Key": KEY})
    assert api.status_code == 429


def test_throttle_counts_the_proxy_s_client_address_only_when_trusted(keyed: TestClient) -> None:
    RUNTIME.settings = RUNTIME.settings.model_copy(update={"auth_attempts": 2, "trust_proxy": True})
    for _ in range(2):
        sign_in(keyed, "wrong", **{"x-forwarded-for": "203.0.113.7"})
    assert sign_in(keyed, "wrong", **{"x-forwarded-for": "203.0.113.7"}).status_code == 429  # type: ignore[attr-defined]
    assert sign_in(keyed, **{"x-forwarded-for": "203.0.113.8"}).status_code == 303  # type: ignore[attr-defined]


def test_metrics_folder_is_one_per_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    shared = tmp_path / "prometheus_multiproc_dir"  # BentoML's, wiped by any server's start
    mine, other = metrics_dir(3000), metrics_dir(3001)
    assert mine != other and mine.parent == tmp_path and shared not in mine.parents
    assert metrics_dir(3000, tmp_path / "given") == tmp_path / "given"
