"""The HTTP front door: NGINX in front of Triton's HTTP port, bounding the request body.

Triton 2.51 exits with SIGSEGV on an HTTP JSON body of about 4.19 MB or more, whatever model it
names (triton-inference-server/server#5840); every request in flight is lost. A real proxy
refuses larger bodies first, with a 413 and a JSON error that says what to do, and passes the
rest through unchanged (headers included: the control secret reaches Triton). ``elang serve``
runs one when ``nginx`` is installed (``scripts/setup.sh`` installs ``nginx-light`` where it can);
the Helm chart runs the same configuration as a sidecar (``nginx_config`` renders both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Below the crash (4,190,083 bytes crashed, 4,100,082 did not), with room for headers.
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024


class FrontDoorError(RuntimeError):
    pass


def nginx_config(listen: str, upstream: str, max_body_bytes: int, prefix: str, pid_file: str, error_log: str) -> str:
    """An nginx.conf that serves ``listen`` (HOST:PORT or PORT) and proxies to ``upstream``
    (HOST:PORT), refusing bodies over ``max_body_bytes`` with a 413 JSON error."""
    message = (
        f'{{"error":"request body over {max_body_bytes} bytes refused by the front door: send large '
        'inputs as binary tensors or over gRPC (docs/OPERATIONS.md, Request size)"}'
    )
    return f"""# written by elang.ops.frontdoor
worker_processes 1;
daemon off;
pid {pid_file};
error_log {error_log} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size {int(max_body_bytes)};
    client_body_buffer_size 1m;
    proxy_request_buffering on;
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    keepalive_timeout 75s;
    upstream triton {{ server {upstream}; keepalive 32; }}
    server {{
        listen {listen};
        error_page 413 = @too_large;
        location / {{
            proxy_pass http://triton;
            proxy_set_header Connection "";
        }}
        location @too_large {{
            default_type application/json;
            return 413 '{message}';
        }}
    }}
}}
"""


@dataclass
class FrontDoor:
    """``nginx`` on ``host:port`` in front of Triton's HTTP endpoint at ``upstream`` (HOST:PORT)."""

    host: str
    port: int
    upstream: str
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    startup_timeout_s: float = 10.0
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _dir: str | None = field(default=None, init=False, repr=False)

    @staticmethod
    def available() -> str | None:
        """The nginx binary, or None."""
        return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)

    def start(self) -> FrontDoor:
        binary = self.available()
        if binary is None:
            raise FrontDoorError(
                "nginx not found: install it (apt-get install nginx-light) or run without a front door"
            )
        self._dir = tempfile.mkdtemp(prefix="elang-frontdoor-")
        conf = Path(self._dir) / "nginx.conf"
        conf.write_text(
            nginx_config(
                f"{self.host}:{self.port}",
                self.upstream,
                self.max_body_bytes,
                self._dir,
                f"{self._dir}/nginx.pid",
                f"{self._dir}/error.log",
            )
        )
        self.process = subprocess.Popen(
            [binary, "-p", self._dir, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(Path(self._dir) / "stderr.log", "wb"),  # noqa: SIM115 - the child keeps it
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FrontDoorError(f"nginx exited with code {self.process.returncode}: {self.log_tail()}")
            if _listening(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise FrontDoorError(f"nginx did not listen on {self.host}:{self.port} within {self.startup_timeout_s:g} s")

    def log_tail(self) -> str:
        if not self._dir:
            return ""
        text = ""
        for name in ("error.log", "stderr.log"):
            path = Path(self._dir) / name
            if path.is_file():
                text += path.read_text(errors="replace")[-2000:]
        return text

    def stop(self) -> None:
        """Stop nginx (its process group, by PID) and remove its folder."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGQUIT)  # graceful: finish requests in flight
                proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> FrontDoor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host if host not in ("0.0.0.0", "") else "127.0.0.1", port)) == 0
