"""Debian's nginx as a child process on loopback, proxying to lepton-router servers.

`Nginx(prefix, upstream_ports)`: nginx listens on a free 127.0.0.1 port and proxies every request
to `upstream { server 127.0.0.1:P; ... }`, round-robin when there are several (nginx's default),
with the headers docs/how-to/behind-nginx.md sets. Each response carries `X-Upstream:
$upstream_addr`, the box that answered it, so a test can see where nginx sent a request.
`.stop()` ends it. `nginx_for(tmp_path, ports)` is the context-manager form.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.server import free_port
from tests.support.tools import require_tool

START_TIMEOUT_S = 15.0


def nginx_conf(prefix: Path, port: int, upstream_ports: Sequence[int]) -> str:
    temp = "\n".join(f"  {kind}_temp_path {prefix}/{kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in upstream_ports)
    return f"""{user}daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {prefix}/access.log;
{temp}
  upstream lepton {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://lepton;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_request_buffering off;
      proxy_buffering off;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"""


class Nginx:
    def __init__(self, prefix: Path, upstream_ports: Sequence[int]) -> None:
        binary = require_tool("/usr/sbin/nginx", "apt-get install nginx-light")
        prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(prefix, self.port, upstream_ports))
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(prefix)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                httpx.get(f"{self.base_url}/", timeout=1)  # any answer (a 502 too) means it listens
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT_S}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@contextmanager
def nginx_for(prefix: Path, upstream_ports: Sequence[int]) -> Iterator[Nginx]:
    proxy = Nginx(prefix, upstream_ports)
    try:
        yield proxy
    finally:
        proxy.stop()
