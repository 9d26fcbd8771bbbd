"""A real ClickHouse server for the fleet tests: `make clickhouse` unpacks Debian's package into
tools/; `Server` runs it on 127.0.0.1 with free ports, its data under a temp folder, and stops it
(its whole process group) however the test ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
BIN_ENV = "EPYC_AGENT_CLICKHOUSE_BIN"  # exported by the Makefile
DEFAULT_BIN = CHECKOUT / "tools" / "clickhouse-18.16.1" / "clickhouse-server"

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
"""
USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"""


def server_bin() -> Path | None:
    p = Path(os.environ.get(BIN_ENV) or DEFAULT_BIN)
    return p if p.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`with Server(bin, folder) as s:` - s.url is http://127.0.0.1:PORT."""

    def __init__(self, binary: Path, folder: Path) -> None:
        self.binary, self.dir = binary, folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.xml").write_text(CONFIG.format(d=self.dir, http=self.port, tcp=free_port()))
        (self.dir / "users.xml").write_text(USERS)
        out = open(self.dir / "stdout.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [str(self.binary), f"--config-file={self.dir / 'config.xml'}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            start_new_session=True,
        )
        out.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"clickhouse-server exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as r:
                    if r.read().strip() == b"Ok.":
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"clickhouse-server did not answer on {self.url} within {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        p = self.dir / "server.err.log"
        return p.read_text(errors="replace")[-2000:] if p.exists() else ""

    def query(self, sql: str) -> str:
        req = urllib.request.Request(f"{self.url}/", data=sql.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.read().decode()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.stop()
