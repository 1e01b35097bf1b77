"""Helm, in a process of its own, for the chart tests.

helm_python loads Go's runtime into the process that imports it, and Go's runtime shares its
signal handling badly with the threads a full test run has started by then (OpenVINO's, gRPC's,
ONNX Runtime's): one CI run died of a segmentation fault inside the chart tests after an OpenVINO
test failed. The chart tests talk to this worker instead, one JSON request per line on stdin, one
JSON answer per line on stdout; the pytest process never loads Go.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path


class HelmError(Exception):
    """What helm refused, with its message (helm_python.HelmError in the worker)."""


class Helm:
    """A running worker: ``lint`` and ``render`` as helm_python answers them."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()

    def _call(self, **request) -> object:
        with self._lock:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the helm worker exited with {self._proc.returncode}")
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the helm worker died (exit {self._proc.wait()}) on {request['op']}")
        answer = json.loads(line)
        if "helm_error" in answer:
            raise HelmError(answer["helm_error"])
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def lint(self, chart: str, values: dict, strict: bool = True) -> dict:
        return self._call(op="lint", chart=chart, values=values, strict=strict)

    def render(self, chart: str, values: dict, name: str, namespace: str) -> dict[str, str]:
        return self._call(op="render", chart=chart, values=values, name=name, namespace=namespace)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _serve() -> None:
    import helm_python as helm

    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "lint":
                result = helm.lint(req["chart"], req["values"], strict=req["strict"])
            else:
                chart = helm.Chart.load(req["chart"])
                result = chart.render(req["values"], name=req["name"], namespace=req["namespace"])
            answer = {"result": result}
        except helm.HelmError as exc:
            answer = {"helm_error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
