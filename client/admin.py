"""The control API's secret: the header that Triton's restricted APIs (model-repository: load,
unload, index; logging; trace) demand, and where the tools find its value.

``elang serve`` makes a fresh secret per start and writes it, mode 0600, to one file per served
port under ``$ELANG_CACHE/admin`` (default ``~/.cache/elang/admin``): the local tools
(``elang calibrate --reload-url``, ``elang tune --reload-url``, ``elang health``) find it from
the URL they are given. Elsewhere (Kubernetes: the chart's Secret) it comes from the environment:
``ELANG_ADMIN_KEY``, or a file named by ``ELANG_ADMIN_KEY_FILE``. It is never a command-line
argument of ours, and never printed.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ADMIN_HEADER = "elang-admin-key"  # lower case: gRPC metadata keys must be
# Triton's gRPC front end reads a restricted protocol's header under this prefix.
GRPC_HEADER_PREFIX = "triton-grpc-protocol-"
ADMIN_KEY_ENV = "ELANG_ADMIN_KEY"
ADMIN_KEY_FILE_ENV = "ELANG_ADMIN_KEY_FILE"
# What `elang serve` restricts by default: what no inference client needs.
RESTRICTED_APIS = ("model-repository", "logging", "trace")
# Every API Triton 2.51 can restrict (its --http-restricted-api / --grpc-restricted-protocol).
RESTRICTABLE = (
    "health",
    "metadata",
    "inference",
    "shared-memory",
    "model-config",
    "model-repository",
    "statistics",
    "trace",
    "logging",
)


def new_key() -> str:
    return secrets.token_urlsafe(32)


def admin_dir() -> Path:
    base = os.environ.get("ELANG_CACHE") or str(Path.home() / ".cache" / "elang")
    return Path(base) / "admin"


def key_file(port: int | str) -> Path:
    return admin_dir() / f"port-{int(port)}.key"


def _port_of(url: str) -> int | None:
    tail = url.rsplit("/", 1)[-1].rsplit(":", 1)
    try:
        return int(tail[1]) if len(tail) == 2 else None
    except ValueError:
        return None


def find_admin_key(url: str | None = None, explicit: str | None = None) -> str | None:
    """The secret for the server at ``url``: ``explicit``, else ``$ELANG_ADMIN_KEY``, else the file
    ``$ELANG_ADMIN_KEY_FILE`` names, else the file ``elang serve`` wrote for that port; None if none."""
    if explicit:
        return explicit
    if os.environ.get(ADMIN_KEY_ENV):
        return os.environ[ADMIN_KEY_ENV]
    named = os.environ.get(ADMIN_KEY_FILE_ENV)
    path = Path(named) if named else (key_file(p) if url and (p := _port_of(url)) else None)
    if path is not None and path.is_file():
        return path.read_text().strip() or None
    return None


def headers_for(key: str | None, protocol: str = "http") -> dict[str, str]:
    """The header carrying ``key`` on ``protocol`` ("http" or "grpc"); {} without a key."""
    if not key:
        return {}
    return {(GRPC_HEADER_PREFIX if protocol == "grpc" else "") + ADMIN_HEADER: key}


def admin_headers(url: str | None = None, explicit: str | None = None, protocol: str = "http") -> dict[str, str]:
    """The control API's header for the server at ``url`` (see :func:`find_admin_key`)."""
    return headers_for(find_admin_key(url, explicit), protocol)


def write_key_files(key: str, ports: list[int]) -> list[Path]:
    """One 0600 file per port holding ``key`` (the folder 0700); returns them."""
    folder = admin_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    paths = []
    for port in ports:
        path = key_file(port)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        os.chmod(path, 0o600)
        paths.append(path)
    return paths


def remove_key_files(paths: list[Path], key: str) -> None:
    """Remove the files that still hold ``key`` (another server may have taken the port since)."""
    for path in paths:
        try:
            if path.read_text().strip() == key:
                path.unlink()
        except OSError:
            continue
