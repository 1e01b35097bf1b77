"""Helm chart and container image: lint, render, validate against Kubernetes schemas."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from elang import contract as c
from elang.repository import model_names

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "elang-serve"
VALUE_FILES = ("values.yaml", "values-gpu.yaml", "values-autoscaling.yaml")
KUBE = "1.30.0"


def _values(name: str) -> dict:
    return yaml.safe_load((CHART / name).read_text())


def _render(values: dict) -> dict[str, list[dict]]:
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values, name="prod", namespace="ml")
    docs: dict[str, list[dict]] = {}
    for path, text in out.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc:
                    docs.setdefault(doc["kind"], []).append(doc)
    return docs


def _container(docs) -> dict:
    (dep,) = docs["Deployment"]
    (ctr,) = dep["spec"]["template"]["spec"]["containers"]
    return ctr


@pytest.mark.parametrize("values_file", VALUE_FILES)
def test_lint_is_clean(values_file):
    report = helm.lint(str(CHART), _values(values_file), strict=True)
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


@pytest.mark.parametrize("values_file", VALUE_FILES)
def test_rendered_manifests_validate(values_file):
    import kubernetes_validate

    docs = _render(_values(values_file))
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= set(docs)
    for kind, items in docs.items():
        for doc in items:
            if kind == "ServiceMonitor":  # a CRD: no bundled schema; checked below
                assert doc["apiVersion"] == "monitoring.coreos.com/v1"
                assert doc["spec"]["endpoints"][0]["port"] == "metrics"
                continue
            kubernetes_validate.validate(doc, KUBE, strict=True)


def test_yamllint_values():
    files = [str(CHART / f) for f in VALUE_FILES] + [str(CHART / "Chart.yaml")]
    out = subprocess.run(
        [sys.executable, "-m", "yamllint", "-c", str(ROOT / "deploy" / ".yamllint.yaml"), *files],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout


def test_defaults_are_safe():
    docs = _render(_values("values.yaml"))
    ctr = _container(docs)
    assert "--model-control-mode=none" in ctr["args"]
    assert not [a for a in ctr["args"] if a.startswith("--load-model")]
    assert {p["name"]: p["containerPort"] for p in ctr["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    probe = ctr["livenessProbe"]["exec"]["command"]
    assert probe[:3] == ["python3", "-m", "elang.health"] and "--url=127.0.0.1:8000" in probe
    assert ctr["livenessProbe"]["timeoutSeconds"] > 10 and "--exit-timeout-secs=10" in ctr["args"]
    assert ctr["readinessProbe"]["httpGet"]["path"] == ctr["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    sc = ctr["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    pod = docs["Deployment"][0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in ctr["volumeMounts"]}
    assert {"/tmp", "/dev/shm", "/models"} <= mounts  # writable scratch despite the read-only root
    assert "--model-repository=/models/python-ort" in ctr["args"]


def test_server_args_name_the_models_the_repository_holds():
    values = _values("values.yaml")
    assert sorted(values["models"]) == model_names(ROOT / "model_repository")
    assert c.ROUTER_MODEL in values["models"]
    values["server"] = {**values["server"], "modelControlMode": "explicit"}
    ctr = _container(_render(values))
    loaded = sorted(a.split("=", 1)[1] for a in ctr["args"] if a.startswith("--load-model="))
    assert loaded == model_names(ROOT / "model_repository")


def test_native_runtime_lists_match_what_the_writer_writes(tiny_repo, tmp_path):
    from elang.repository import ClassifierSpec, write_repository

    repo = write_repository(
        tmp_path / "native",
        ClassifierSpec(tiny_repo["work"] / "swift", runtime="tensorrt"),
        ClassifierSpec(tiny_repo["work"] / "super", runtime="tensorrt"),
    )
    assert sorted(_values("values-gpu.yaml")["models"]) == model_names(repo)


def test_gpu_and_autoscaling_values():
    gpu = _render({**_values("values.yaml"), **_values("values-gpu.yaml")})
    ctr = _container(gpu)
    assert ctr["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--model-repository=/models/tensorrt" in ctr["args"]
    pod = gpu["Deployment"][0]["spec"]["template"]["spec"]
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    auto = _render(_values("values-autoscaling.yaml"))
    (hpa,) = auto["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "avg_time_queue_us"
    assert "replicas" not in auto["Deployment"][0]["spec"]  # the HPA owns the replica count
    actr = _container(auto)
    assert "--model-repository=s3://my-models/elang/python-ort" in actr["args"]
    assert actr["envFrom"][0]["secretRef"]["name"] == "elang-s3-credentials"


@pytest.mark.parametrize(
    ("override", "match"),
    [({"runtime": "tflite"}, "runtime must be one of"), ({"server": {"modelControlMode": "poll"}}, "none or explicit")],
)
def test_bad_values_fail_with_a_message(override, match):
    values = {**_values("values.yaml"), **override}
    with pytest.raises(helm.HelmError, match=match):
        _render(values)


def test_dockerfile_lint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, str(ROOT / "deploy" / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_image_install_step_in_a_fresh_venv(tmp_path):
    """The Dockerfile's pip steps, in a clean venv: the serving modules import without extras."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    req = ROOT / "deploy" / "docker" / "requirements-serve.txt"
    subprocess.run([*pip, "-r", str(req), "onnxruntime"], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", str(ROOT)], check=True, timeout=600)
    code = "import elang.router, elang.classifier, elang.triton.common, elang.calibration; print('ok')"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "ok", out.stderr


def test_the_liveness_probe_command_is_the_health_check():
    """The chart's exec probe parses with `elang health`'s own arguments; the shallow probe stays available."""
    import argparse

    from elang.health import add_arguments

    values = _values("values.yaml")
    values["probes"]["liveness"]["slowIsAlive"] = True
    cmd = _container(_render(values))["livenessProbe"]["exec"]["command"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(cmd[3:])
    assert (args.url, args.timeout, args.slow_is_alive, args.quiet) == ("127.0.0.1:8000", 10.0, True, True)
    values["probes"]["liveness"]["deep"] = False
    assert _container(_render(values))["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
