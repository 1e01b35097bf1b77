"""Keep a local server healthy: the deep health check (``elang.ops.health``) on a timer, and a heal.

The bundled Triton 2.51 does not restart a Python stub that died (an OOM kill, a crash);
the model then fails every request while the server's health endpoints say 200. The
supervisor runs the same deep check as the Kubernetes liveness probe every
``interval_s``; after ``failures`` checks in a row that find an error (a dead stub, a failed
load) or no server, or after ``slow_after_s`` of a model answering too slowly (a hung stage:
a short stall, such as one slow call, heals itself and is only reported), it heals:

* ``reload`` (needs model control ``explicit``): load each failing model again in place (new
  stubs start beside the dead one, then take over; the model never goes away). The other
  models keep serving: requests whose texts stay on Swift are answered throughout. Falls back
  to a restart if that did not help.
* ``restart``: stop the server by PID (a short grace, then SIGKILL to its process group)
  and start it again on the same ports.
* ``exit``: stop the server and end with exit code 3 and a message naming what failed.
* ``auto``: ``reload`` when the server runs with model control ``explicit``, else ``restart``.

Every heal is recorded with the time from the first failing check to the first healthy
one after it (the time to heal).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from elang.ops.health import HealthReport, deep_check, reload_in_place
from elang.ops.server import TritonServer

log = logging.getLogger(__name__)
HEALS = ("auto", "reload", "restart", "exit", "off")
EXIT_UNHEALTHY = 3


@dataclass
class HealEvent:
    """One episode: unhealthy at ``detected_s`` (seconds since the supervisor started), healed or not."""

    detected_s: float
    failing: list[str]
    reason: str
    action: str = ""
    healed_s: float | None = None

    @property
    def time_to_heal_s(self) -> float | None:
        return None if self.healed_s is None else self.healed_s - self.detected_s

    def describe(self) -> str:
        what = ", ".join(self.failing) or "server"
        if self.healed_s is None:
            return f"unhealthy ({what}: {self.reason}); {self.action or 'not healed'}"
        return f"healed by {self.action} in {self.time_to_heal_s:.1f} s ({what}: {self.reason})"


class Supervisor:
    def __init__(
        self,
        server: TritonServer,
        heal: str = "auto",
        interval_s: float = 5.0,
        failures: int = 2,
        timeout_s: float = 10.0,
        notify: Callable[[str], None] | None = None,
        slow_after_s: float = 60.0,
    ) -> None:
        if heal not in HEALS:
            raise ValueError(f"heal must be one of {', '.join(HEALS)}, got {heal!r}")
        if heal == "auto":
            heal = "reload" if server.model_control == "explicit" else "restart"
        if heal == "reload" and server.model_control != "explicit":
            raise ValueError(
                "heal 'reload' needs a server with model control 'explicit' (elang serve --model-control explicit, the default)"
            )
        if interval_s <= 0 or failures < 1 or timeout_s <= 0:
            raise ValueError("interval_s and timeout_s must be > 0 and failures >= 1")
        self.server = server
        self.heal = heal
        self.interval_s = interval_s
        self.failures = failures
        self.timeout_s = timeout_s
        self.slow_after_s = slow_after_s
        self._slow_since: float | None = None
        self.notify = notify or (lambda msg: log.warning("%s", msg))
        self.events: list[HealEvent] = []
        self.exit_code: int | None = None
        self._t0 = time.monotonic()
        self._bad = 0
        self._open: HealEvent | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        return time.monotonic() - self._t0

    def check(self) -> HealthReport:
        if self.server.process is None or self.server.process.poll() is not None:
            code = None if self.server.process is None else self.server.process.returncode
            return HealthReport(live=False, error=f"tritonserver exited (code {code})")
        return deep_check(self.server.http_url, self.timeout_s, admin_key=self.server.admin_key)

    def step(self) -> HealthReport:
        """One check, and a heal when ``failures`` checks in a row failed."""
        t = self.now()
        report = self.check()
        if report.healthy:
            self._bad = 0
            self._slow_since = None
            if self._open is not None:
                if self._open.action:
                    self._open.healed_s = t
                    self.notify(f"elang serve: {self._open.describe()}")
                else:
                    self._open.action = "none needed: it recovered by itself"
                    self._open.healed_s = t
                    self.notify(f"elang serve: recovered without a heal after {t - self._open.detected_s:.1f} s")
                self._open = None
            return report
        if self._open is None:
            self._open = HealEvent(t, report.failing(), report.summary().splitlines()[-1].strip())
            self.events.append(self._open)
            self.notify(f"elang serve: {report.summary()}")
        exited = self.server.process is None or self.server.process.poll() is not None
        if report.broken or exited:
            self._slow_since = None
            self._bad += 1
            due = self._bad >= self.failures or exited
        else:  # only slow: a stall may pass by itself; a stage hung this long will not
            self._bad = 0
            self._slow_since = t if self._slow_since is None else self._slow_since
            due = t - self._slow_since >= self.slow_after_s
        if due:
            self._heal(report)
            self._bad = 0
            self._slow_since = None
        return report

    def _heal(self, report: HealthReport) -> None:
        event = self._open
        if self.heal == "off":
            event.action = "not healed (heal off)"
            return
        if self.heal == "exit":
            event.action = "stopped the server (heal exit)"
            self.notify(
                f"elang serve: stopping: {report.summary()}; exiting with code {EXIT_UNHEALTHY} "
                "so that a process manager restarts it"
            )
            self.server.stop(timeout_s=5.0)
            self.exit_code = EXIT_UNHEALTHY
            self._stop.set()
            return
        failing = report.failing()
        alive = self.server.process is not None and self.server.process.poll() is None
        if self.heal == "reload" and alive and failing:
            self.notify(f"elang serve: reloading {', '.join(failing)}")
            event.action = f"reload of {', '.join(failing)}"
            if self._reload(failing) and self._confirm():
                return
            self.notify("elang serve: reload did not heal it; restarting the server")
        event.action = "restart" if not event.action else event.action + ", then restart"
        pid = self.server.process.pid if self.server.process else "-"
        self.notify(f"elang serve: restarting tritonserver (pid {pid})")
        self.server.restart(stop_timeout_s=5.0)
        self._confirm()

    def _confirm(self) -> bool:
        """Check right after a heal; a healthy answer closes the episode with its time to heal."""
        if self._open is None:
            return False
        report = self.check()
        if not report.healthy:
            self.notify(f"elang serve: still unhealthy right after the heal: {report.summary()}")
            return False
        self._open.healed_s = self.now()
        self.notify(f"elang serve: {self._open.describe()}")
        self._open = None
        return True

    def _reload(self, models: list[str]) -> bool:
        """Reload each model in place (``elang.ops.health.reload_in_place``)."""
        why = reload_in_place(self.server.http_url, models, self.server.admin_headers("http"))
        if why is not None:
            self.notify(f"elang serve: reload failed: {why}")
        return why is None

    def run(self) -> int | None:
        """Supervise until :meth:`stop` or a heal that exits; returns ``exit_code`` (None: stopped)."""
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the supervisor must outlive one failed step
                log.exception("health supervision step failed")
        return self.exit_code

    def start(self) -> Supervisor:
        self._thread = threading.Thread(target=self.run, name="elang-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timeout_s + self.interval_s + 60)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()
