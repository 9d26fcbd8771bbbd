"""ClickHouse over its HTTP interface: parse the URL, run SQL, insert JSONEachRow.

Only the standard library (http.client, one kept-alive connection): the HTTP interface
is the one every ClickHouse since 1.1 serves, so no driver is needed and nothing of ours
depends on a server version beyond the SQL in `fleet.sql` (tested on 18.16). A server
error becomes one `EpycAgentError` line naming the server's own message.
"""

from __future__ import annotations

import base64
import http.client
import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

from ..errors import EpycAgentError

DEFAULT_PORTS = {"http": 8123, "https": 8443}
TIMEOUT_S = 300.0
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# 64-bit integers as JSON numbers, not strings (the 18.x default quotes them)
SETTINGS = "output_format_json_quote_64bit_integers=0"


class FleetError(EpycAgentError):
    """The ClickHouse server is unreachable, refused a query, or the URL is not one."""


class Target:
    """Where the fleet table lives: `http[s]://[user[:password]@]HOST[:PORT][/DB]`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise FleetError(
                f"not a ClickHouse HTTP URL: {url!r}", hint="use http://HOST:8123 or http://HOST:8123/DATABASE"
            )
        db = parts.path.strip("/") or "default"
        if not _IDENT.match(db):
            raise FleetError(f"not a database name: {db!r}", hint="use letters, digits and _ (http://HOST:8123/fleet)")
        self.scheme, self.host = parts.scheme, parts.hostname
        try:
            self.port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise FleetError(f"bad port in {url!r}", hint="use http://HOST:8123") from None
        self.db = db
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else ""

    def __str__(self) -> str:
        """The URL without its password (for messages and checkpoints)."""
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}/{self.db}"


class Client:
    """One connection to the server; `query` for SQL, `insert` for rows."""

    def __init__(self, target: Target, timeout: float = TIMEOUT_S) -> None:
        self.target = target
        cls = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        self._conn = cls(target.host, target.port, timeout=timeout)
        self._headers = {"Connection": "keep-alive"}
        if target.user:
            token = base64.b64encode(f"{target.user}:{target.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def _post(self, params: str, body: bytes) -> bytes:
        path = f"/?{SETTINGS}{params}"  # every statement names its database (it may not exist yet)
        for attempt in (1, 2):  # a kept-alive connection the server closed is reopened once
            try:
                self._conn.request("POST", path, body=body, headers=self._headers)
                resp = self._conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                if attempt == 2:
                    raise FleetError(
                        f"{self.target} closed the connection", hint="is it a ClickHouse server?"
                    ) from None
            except OSError as e:
                self._conn.close()
                raise FleetError(
                    f"cannot reach ClickHouse at {self.target}: {e.strerror or e}",
                    hint="is the server running and its HTTP port (8123) open?",
                ) from None
        if resp.status != 200:
            raise FleetError(f"ClickHouse at {self.target} refused the query: {_first_line(data)}")
        return data

    def query(self, sql: str) -> bytes:
        """Run one statement; the raw response body."""
        return self._post("", sql.encode())

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """A SELECT's rows as dicts (`FORMAT JSONEachRow` is appended)."""
        body = self.query(f"{sql}\nFORMAT JSONEachRow")
        return [_loads(line) for line in body.splitlines() if line]

    def insert(self, table: str, rows: bytes) -> None:
        """JSONEachRow lines into `table` (one INSERT: one request)."""
        self._post("&query=" + quote(f"INSERT INTO {table} FORMAT JSONEachRow"), rows)

    def close(self) -> None:
        self._conn.close()


def _loads(line: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(line)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:  # bytes that were never UTF-8 in a shipped line
        return orjson.loads(line.decode("utf-8", "replace"))  # type: ignore[no-any-return]


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:400] if text else "(no message)"


def literal(value: str | bytes) -> str:
    """A ClickHouse string literal: single quotes, backslash escapes."""
    s = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
