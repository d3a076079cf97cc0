"""SeaweedFS's admin UI (9001): does it refuse a request without the login, and accept the login?

Shared by tests/deploy (a real `weed mini` on loopback, no Docker) and tests/containers (compose)."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

# An API call that needs a session when the UI has a login (401), and answers 200 when it has none.
PROBE = "/api/cluster/topology"


def _open(opener, url: str, data: bytes | None = None) -> tuple[int, str, str]:
    try:
        with opener.open(url, data=data, timeout=10) as r:
            return r.status, r.geturl(), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, url, ""


def status_without_login(base: str) -> int:
    return _open(urllib.request.build_opener(), base + PROBE)[0]


def status_with_login(base: str, user: str, password: str) -> int:
    """Sign in through the login form (with its CSRF token), then call the same API."""
    op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    _, _, page = _open(op, base + "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    form = {"username": user, "password": password, **({"csrf_token": token.group(1)} if token else {})}
    _open(op, base + "/login", urllib.parse.urlencode(form).encode())
    return _open(op, base + PROBE)[0]
