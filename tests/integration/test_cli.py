"""The `elang` command against the real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from elang.client.client import ElangClient
from elang.export.classify.tiny import sample_rows
from elang.ops.server import free_port

pytestmark = pytest.mark.integration
ELANG = [sys.executable, "-m", "elang.cli"]


def test_serve_starts_prints_endpoints_and_stops_on_sigterm(tiny_repo, tmp_path):
    ports = [free_port() for _ in range(3)]
    cmd = ELANG + ["serve", "--model-repository", str(tiny_repo["repo"]), "--http-port", str(ports[0])]
    cmd += ["--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), "--log-file", str(tmp_path / "s.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert f"127.0.0.1:{ports[1]}" in text and f"127.0.0.1:{ports[0]}" in text, text
        server_pid = int(text.split("(pid ")[1].split(")")[0])
        assert ElangClient(f"127.0.0.1:{ports[1]}").is_ready()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "stopped" in proc.stdout.read()
        with pytest.raises(ProcessLookupError):
            os.kill(server_pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_classify_csv_prints_predictions_and_stats(server, tmp_path):
    f = tmp_path / "in.csv"
    f.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in sample_rows()))
    out = subprocess.run(
        ELANG + ["classify", "--url", server.grpc_url, str(f), "--label-column", "label", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout[out.stdout.index("\n{") :])
    assert stats["answered"] == len(sample_rows()) and stats["failed"] == 0
    assert 0 <= stats["accuracy"] <= 1 and "swift" in stats["routes"]


def test_classify_stdin_over_http(server):
    out = subprocess.run(
        ELANG + ["classify", "--url", server.http_url, "--protocol", "http", "--threshold=-inf", "-"],
        input="first text\nsecond text\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("route=1") == 2 and "super fraction 100.0%" in out.stdout


def test_classify_exit_code_when_a_text_fails(server, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "fine"}\n{"text": ""}\n')
    out = subprocess.run(ELANG + ["classify", "--url", server.grpc_url, str(f)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "ERROR" in out.stdout and "1 of 2 texts failed" in out.stderr


def test_classify_down_server_is_a_clear_error(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("hello\n")
    port = free_port()
    out = subprocess.run(ELANG + ["classify", "--url", f"127.0.0.1:{port}", str(f)], capture_output=True, text=True)
    assert out.returncode == 2
    assert f"127.0.0.1:{port}" in out.stderr and "error" in out.stderr


def test_classify_reports_blank_lines_and_refuses_other_encodings(server, tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes("Café au lait\n\ngood day\n   \nbad day\n".encode("latin-1"))
    cmd = ELANG + ["classify", "--url", server.grpc_url, str(f)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2 and "line 1, column 4: byte 0xe9 is not valid utf-8" in out.stderr, out.stderr
    assert "ERROR" not in out.stdout  # nothing was sent
    out = subprocess.run(cmd + ["--encoding", "latin-1"], capture_output=True, text=True)
    lines = [x for x in out.stdout.splitlines() if "\t" in x]
    assert len(lines) == 5, out.stdout  # one output line per input line, blank ones included
    assert lines[0].endswith("Café au lait") and "�" not in out.stdout
    assert lines[1].startswith("ERROR\tline 2\t") and lines[3].startswith("ERROR\tline 4\t") and "empty" in lines[1]
    assert "2 of 5 texts failed; see the ERROR lines" in out.stderr and out.returncode == 1
    jsonl = tmp_path / "out.jsonl"
    out = subprocess.run(cmd + ["--encoding", "latin-1", "--output", str(jsonl)], capture_output=True, text=True)
    assert "ERROR" not in out.stdout and f"their errors are in {jsonl}" in out.stderr
    assert sum(1 for x in jsonl.read_text().splitlines() if '"error": null' not in x) == 2
    out = subprocess.run(cmd + ["--errors", "replace"], capture_output=True, text=True)
    assert "Caf\ufffd au lait" in out.stdout


def test_classify_checks_the_threshold_before_sending(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("hello\n")
    port = free_port()  # nothing listens: a threshold error must come first
    for bad in ("abc", "nan", "1,x"):
        out = subprocess.run(
            ELANG + ["classify", "--url", f"127.0.0.1:{port}", str(f), f"--threshold={bad}"],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 2 and "argument --threshold" in out.stderr and repr(bad) in out.stderr
