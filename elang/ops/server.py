"""Launcher for the real Triton Inference Server bundled in ``nvidia-pytriton``.

``TritonServer`` prepares a writable backend directory (the Python backend plus the
stub built for this interpreter), sets the library path and PATH the stub needs
(see docs/ARCHITECTURE.md), starts ``tritonserver`` bound to 127.0.0.1 on free
ports by default, waits for readiness and stops the process it started by PID.
Used by ``elang serve``, the tests and the benchmarks.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from elang.client.admin import ADMIN_HEADER, RESTRICTABLE, RESTRICTED_APIS, headers_for

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """The server could not be found, started, or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _pytriton_root() -> tuple[Path, Path]:
    try:
        import pytriton
    except ImportError:
        raise ServerError("nvidia-pytriton is not installed: pip install 'nvidia-pytriton==0.7.0'") from None
    pkg = Path(pytriton.__file__).parent
    root = pkg / "tritonserver"
    libs = pkg.parent / "nvidia_pytriton.libs"
    if not (root / "bin" / "tritonserver").is_file():
        raise ServerError(f"no tritonserver binary under {root}; reinstall nvidia-pytriton==0.7.0")
    return root, libs


def prepare_backends(cache_dir: Path | None = None) -> Path:
    """A writable backend directory holding the Python backend and this interpreter's stub."""
    root, _ = _pytriton_root()
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / pyver / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(f"nvidia-pytriton has no Python backend stub for Python {pyver} ({stub})")
    base = Path(cache_dir or os.environ.get("ELANG_CACHE", Path.home() / ".cache" / "elang"))
    dest = base / f"triton-backends-py{pyver}"
    python_dir = dest / "python"
    marker = python_dir / ".source"
    if not (marker.is_file() and marker.read_text() == str(root)):
        tmp = Path(tempfile.mkdtemp(dir=base if base.exists() else None))
        shutil.copytree(root / "backends" / "python", tmp / "python", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(stub, tmp / "python" / "triton_python_backend_stub")
        (tmp / "python" / ".source").write_text(str(root))
        base.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest) if tmp.parent == base else shutil.move(str(tmp), dest)
    return dest


def server_environment() -> dict[str, str]:
    """The environment the server and its Python stubs need (see the module doc)."""
    _, libs = _pytriton_root()
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@dataclass
class TritonServer:
    """The real ``tritonserver`` as a context manager.

    >>> with TritonServer("repo") as server:   # doctest: +SKIP
    ...     server.grpc_url, server.http_url
    """

    model_repository: Path
    host: str = "127.0.0.1"
    http_port: int | None = None
    grpc_port: int | None = None
    metrics_port: int | None = None
    # Where HTTP binds, when not ``host`` (behind a front door: 127.0.0.1 only).
    http_host: str | None = None
    startup_timeout_s: float = 120.0
    log_path: Path | None = None
    log_verbose: int = 0
    # "none": the repository is fixed at startup; "explicit": models can be (re)loaded through
    # the API, which is how a new calibration reaches a running server without a restart.
    model_control: str = "none"
    # After SIGTERM, Triton waits this long for in-flight requests, then exits. Its default (30 s)
    # also applies when a Python stub died, which otherwise stalls the shutdown.
    exit_timeout_s: int = 10
    extra_args: list[str] = field(default_factory=list)
    # The secret the restricted APIs demand in the ADMIN_HEADER header (elang.client.admin); None:
    # nothing restricted. Triton takes it only on its command line (never logged here).
    admin_key: str | None = field(default=None, repr=False)
    restricted_apis: tuple[str, ...] = RESTRICTED_APIS
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def http_url(self) -> str:
        return f"{self.http_host or self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        root, _ = _pytriton_root()
        return [
            str(root / "bin" / "tritonserver"),
            f"--model-repository={Path(self.model_repository).resolve()}",
            f"--backend-directory={prepare_backends()}",
            f"--http-address={self.http_host or self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={int(self.exit_timeout_s)}",
            f"--log-verbose={self.log_verbose}",
            *(["--model-control-mode=explicit", "--load-model=*"] if self.model_control == "explicit" else []),
            *self._restriction_args(self.admin_key),
            *self.extra_args,
        ]

    def _restriction_args(self, key: str | None) -> list[str]:
        if not key or not self.restricted_apis:
            return []
        apis = ",".join(self.restricted_apis)
        return [
            f"--http-restricted-api={apis}:{ADMIN_HEADER}={key}",
            f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}={key}",
        ]

    def redacted_command(self) -> list[str]:
        """``command()`` with the secret replaced, for logs."""
        secret = self.admin_key
        return [a.replace(secret, "<redacted>") if secret else a for a in self.command()]

    def admin_headers(self, protocol: str = "http") -> dict[str, str]:
        """The header the restricted APIs of this server demand on ``protocol`` ({} when none is)."""
        return headers_for(self.admin_key if self.restricted_apis else None, protocol)

    def start(self) -> TritonServer:
        repo = Path(self.model_repository)
        if self.model_control not in ("none", "explicit"):
            raise ServerError(f"model_control must be 'none' or 'explicit', got {self.model_control!r}")
        unknown = [a for a in self.restricted_apis if a not in RESTRICTABLE]
        if unknown:
            raise ServerError(f"cannot restrict {unknown}: Triton restricts {', '.join(RESTRICTABLE)}")
        if not repo.is_dir():
            raise ServerError(f"model repository {repo} does not exist")
        self.http_port = self.http_port or free_port(self.http_host or self.host)
        self.grpc_port = self.grpc_port or free_port(self.host)
        self.metrics_port = self.metrics_port or free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        cmd = self.command()
        log.info("starting %s", " ".join(self.redacted_command()))
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=server_environment(),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def is_ready(self) -> bool:
        """Triton's readiness (every model loaded), asked with tritonclient."""
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException

        try:
            client = httpclient.InferenceServerClient(self.http_url, connection_timeout=2.0, network_timeout=2.0)
            try:
                return bool(client.is_server_ready())
            finally:
                client.close()
        except (InferenceServerException, OSError, ConnectionError):
            return False
        except Exception:  # geventhttpclient raises its own socket errors while the port is closed
            return False

    def _note_shm(self) -> None:
        """Remember the /dev/shm regions this server's stubs use (each stub's argv names its own)."""
        if self.process is None:
            return
        regions = getattr(self, "_shm_regions", set())
        for pid, _ in stub_processes(self.process.pid).values():
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            regions |= {a.decode() for a in args if a.startswith(SHM_PREFIX)}
        self._shm_regions = regions

    def _remove_shm(self) -> None:
        for name in getattr(self, "_shm_regions", set()):
            with contextlib.suppress(OSError):
                (Path("/dev/shm") / name).unlink()
        self._shm_regions = set()

    def _metrics_listening(self) -> bool:
        if not self.metrics_port:
            return True
        try:
            with socket.create_connection((self.host, self.metrics_port), timeout=1.0):
                return True
        except OSError:
            return False

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"tritonserver exited with code {self.process.returncode} during startup; "
                    f"last log lines:\n{self.log_tail()}"
                )
            # Triton reports ready before its metrics endpoint listens (seen on a loaded machine):
            # wait for both, so a caller's first scrape finds it.
            if self.is_ready() and self._metrics_listening():
                self._note_shm()
                return
            time.sleep(0.2)
        raise ServerError(f"tritonserver not ready after {self.startup_timeout_s:.0f} s; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not Path(self.log_path).is_file():
            return ""
        text = Path(self.log_path).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM the server this object started (by PID); SIGKILL its process group (its stubs
        included) after ``timeout_s`` (default: ``exit_timeout_s`` + 5 s). Whatever way the server
        ended (stopped here, crashed, killed), its process group is ended too, so no stub is left
        orphaned, and the shared-memory regions its stubs held are removed from /dev/shm."""
        if timeout_s is None:
            timeout_s = self.exit_timeout_s + 5.0
        proc = self.process
        if proc is None:
            return None
        try:
            return self._stop(proc, timeout_s)
        finally:
            # Stubs a crash left behind: the group outlives its leader. Killed by PID, each one checked
            # to be a stub in this server's process group (a reused group id is never signalled).
            for pid in group_stubs(proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            self._remove_shm()

    def _stop(self, proc: subprocess.Popen, timeout_s: float) -> int | None:
        if proc.poll() is not None:
            return proc.returncode
        self._note_shm()
        dead = self.dead_stubs()
        if dead:  # Triton would wait for a stub that will never answer: do not wait long
            log.warning("stubs %s of tritonserver pid %d are dead; stopping it without a long grace", dead, proc.pid)
            timeout_s = min(timeout_s, 3.0)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("tritonserver pid %d did not stop in %.0f s; killing it", proc.pid, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(10)

    def restart(self, stop_timeout_s: float | None = None) -> TritonServer:
        """Stop the server (by PID) and start it again on the same ports and repository."""
        self.stop(stop_timeout_s)
        return self.start()

    def stub_pids(self, model: str | None = None) -> dict[str, int]:
        """PIDs of this server's Python-backend stubs by instance name (``super_0_0``); see :func:`stub_pids`."""
        if self.process is None or self.process.poll() is not None:
            return {}
        return {name: pid for name, (pid, _) in stub_processes(self.process.pid, model).items()}

    def dead_stubs(self) -> list[str]:
        """Stub instances that died (zombies the server never reaped): their models fail every request."""
        if self.process is None or self.process.poll() is not None:
            return []
        return [name for name, (_, state) in stub_processes(self.process.pid).items() if state in ("Z", "X")]

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


SHM_PREFIX = b"triton_python_backend_shm_region"


def group_stubs(pgid: int) -> list[int]:
    """PIDs of live Python-backend stubs in process group ``pgid`` (a server started by this module
    leads its own group; its stubs stay in it when the server dies)."""
    out = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm_end = stat_path.read_text().rsplit(")", 1)
            fields = comm_end[1].split()
            comm = comm_end[0].split("(", 1)[1]
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X") and comm.startswith("triton_python"):
            out.append(int(stat_path.parent.name))
    return out


def stub_processes(server_pid: int, model: str | None = None) -> dict[str, tuple[int, str]]:
    """The Python-backend stubs started by tritonserver ``server_pid``: instance name -> (PID, state).

    Read from /proc (state "Z": a stub that died and was not reaped). ``model`` keeps only that
    model's instances (``super_0_0``, ``super_1_0``...). The fault tests kill stubs by these PIDs.
    """
    out = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            stat = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) != server_pid:
                continue
            args = cmdline.read_bytes().split(b"\0")
            comm = (cmdline.parent / "comm").read_text().strip()
        except (OSError, IndexError, ValueError):
            continue
        if not comm.startswith("triton_python") and not (args and args[0].endswith(b"triton_python_backend_stub")):
            continue
        # argv: stub, model.py path, shm region, sizes, parent pid, backend dir, ipc handle, instance name, kind.
        # A zombie has no argv left: its instance name is then unknown.
        name = next(
            (a.decode() for a in args if re.fullmatch(rb"[\w.-]+_\d+_\d+", a)), f"unknown-stub-{cmdline.parent.name}"
        )
        if model is None or re.fullmatch(rf"{re.escape(model)}_\d+_\d+", name):
            out[name] = (int(cmdline.parent.name), stat[0])
    return out


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies (Linux).

    The server runs in a session of its own (so that stop() can kill its stubs with it), which
    also takes it out of its parent's process group: without this, an `elang serve` killed
    with SIGKILL would leave a server running and holding its ports. Linux ties this to the
    thread that started the server, so start it from one that outlives it (the main thread, or
    the supervisor's, which runs until the server is stopped).
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
