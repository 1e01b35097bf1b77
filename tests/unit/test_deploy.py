"""Helm chart and container image: lint, render, validate against Kubernetes schemas."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chart_checks import dashboard_metric_names
from helm_worker import Helm, HelmError

from elang import contract as c
from elang.repository.writer import model_names

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "elang-serve"
VALUE_FILES = (
    "values.yaml",
    "values-gpu.yaml",
    "values-autoscaling.yaml",
    "values-image.yaml",
    "values-initcontainer.yaml",
    "values-objectstore-gcs.yaml",
    "values-objectstore-azure.yaml",
    "values-disaggregated.yaml",
)
KUBE = "1.30.0"


_HELM: list[Helm] = []  # helm runs in a worker process of its own (tests/helm_worker.py says why)


@pytest.fixture(scope="module", autouse=True)
def _helm_worker():
    yield
    while _HELM:
        _HELM.pop().close()


def _helm() -> Helm:
    if not _HELM:
        _HELM.append(Helm())
    return _HELM[0]


def _values(name: str) -> dict:
    return yaml.safe_load((CHART / name).read_text())


def _render(values: dict) -> dict[str, list[dict]]:
    out = _helm().render(str(CHART), values, name="prod", namespace="ml")
    docs: dict[str, list[dict]] = {}
    for path, text in out.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc:
                    docs.setdefault(doc["kind"], []).append(doc)
    return docs


def _container(docs, name: str = "tritonserver") -> dict:
    (dep,) = docs["Deployment"]
    (ctr,) = [x for x in dep["spec"]["template"]["spec"]["containers"] if x["name"] == name]
    return ctr


def _dashboards(docs) -> list[dict]:
    return [cm for cm in docs.get("ConfigMap", []) if cm["metadata"]["labels"].get("grafana_dashboard") == "1"]


@pytest.mark.parametrize("values_file", VALUE_FILES)
def test_lint_is_clean(values_file):
    report = _helm().lint(str(CHART), _values(values_file), strict=True)
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


@pytest.mark.parametrize("values_file", VALUE_FILES)
def test_rendered_manifests_validate(values_file):
    import kubernetes_validate

    docs = _render(_values(values_file))
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= set(docs)
    for kind, items in docs.items():
        for doc in items:
            if kind == "ConfigMap" and doc["metadata"]["labels"].get("grafana_dashboard") == "1":  # its JSON
                json.loads(next(iter(doc["data"].values())))
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
    assert "command" not in ctr and ctr["args"][0] == "tritonserver"  # the image's ENTRYPOINT stays
    # Healing in place: explicit model control, every model loaded, the control API locked.
    assert "--model-control-mode=explicit" in ctr["args"]
    assert [a for a in ctr["args"] if a.startswith("--load-model")] == [
        f"--load-model={m}" for m in ("elang", "super", "swift")
    ]
    assert "--reload-failing" in ctr["livenessProbe"]["exec"]["command"]
    assert {p["name"]: p["containerPort"] for p in ctr["ports"]} == {"grpc": 8001, "metrics": 8002}
    # HTTP enters through the front door (NGINX); Triton's own HTTP listens on loopback only
    assert {p["name"]: p["containerPort"] for p in _container(docs, "front-door")["ports"]} == {"http": 8000}
    assert "--http-address=127.0.0.1" in ctr["args"] and "--http-port=8010" in ctr["args"]
    probe = ctr["livenessProbe"]["exec"]["command"]
    assert probe[:3] == ["python3", "-m", "elang.ops.health"] and "--url=127.0.0.1:8010" in probe
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
    from elang.repository.writer import ClassifierSpec, write_repository

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
    # Engines are built on the node's GPU into a writable copy that the server then serves.
    assert "--model-repository=/prepared/repository" in ctr["args"]
    (prep,) = gpu["Deployment"][0]["spec"]["template"]["spec"]["initContainers"]
    assert "command" not in prep and prep["args"][:3] == ["python3", "-m", "elang.ops.prepare"]
    assert "--source=/models/tensorrt" in prep["args"] and "--build-engines" in prep["args"]
    assert prep["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {m["mountPath"]: m.get("readOnly", False) for m in prep["volumeMounts"]}["/prepared"] is False
    pod = gpu["Deployment"][0]["spec"]["template"]["spec"]
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    auto = _render(_values("values-autoscaling.yaml"))
    (hpa,) = auto["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "avg_time_queue_us"
    assert "replicas" not in auto["Deployment"][0]["spec"]  # the HPA owns the replica count
    actr = _container(auto)
    assert "--model-repository=/models/python-ort" in actr["args"]
    assert "envFrom" not in actr  # the S3 credentials reach the fetch container only


@pytest.mark.parametrize(
    ("override", "match"),
    [({"runtime": "tflite"}, "runtime must be one of"), ({"server": {"modelControlMode": "poll"}}, "none or explicit")],
)
def test_bad_values_fail_with_a_message(override, match):
    values = {**_values("values.yaml"), **override}
    with pytest.raises(HelmError, match=match):
        _render(values)


def test_dockerfile_lint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, str(ROOT / "deploy" / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_liveness_probe_command_is_the_health_check():
    """The chart's exec probe parses with `elang health`'s own arguments; the shallow probe stays available."""
    import argparse

    from elang.ops.health import add_arguments

    values = _values("values.yaml")
    values["probes"]["liveness"]["slowIsAlive"] = True
    cmd = _container(_render(values))["livenessProbe"]["exec"]["command"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(cmd[3:])
    assert (args.url, args.timeout, args.slow_is_alive, args.quiet) == ("127.0.0.1:8010", 10.0, True, True)
    values["probes"]["liveness"]["deep"] = False
    assert _container(_render(values))["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def _pdb(values: dict) -> dict:
    (pdb,) = _render(values)["PodDisruptionBudget"]
    return pdb["spec"]


def test_the_pdb_never_blocks_a_drain():
    values = _values("values.yaml")
    assert values["replicaCount"] == 1
    spec = _pdb(values)
    assert spec["maxUnavailable"] == 1 and "minAvailable" not in spec
    values["podDisruptionBudget"] = {**values["podDisruptionBudget"], "minAvailable": 1}
    with pytest.raises(HelmError, match="would block every node drain"):
        _render(values)
    assert _pdb({**values, "replicaCount": 3})["minAvailable"] == 1
    assert _pdb(_values("values-autoscaling.yaml"))["minAvailable"] == 1  # minReplicas 2


def _pod(docs) -> dict:
    return docs["Deployment"][0]["spec"]["template"]["spec"]


def _secret_refs(ctr: dict) -> set[str]:
    refs = {e["secretRef"]["name"] for e in ctr.get("envFrom", []) if "secretRef" in e}
    refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in ctr.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    return refs


@pytest.mark.parametrize(
    "values_file, secret, command",
    [
        ("values-autoscaling.yaml", "elang-s3-credentials", "aws s3 sync --only-show-errors s3://my-models/elang/python-ort /models/python-ort"),
        ("values-objectstore-gcs.yaml", None, "gcloud storage rsync --recursive gs://my-models/elang/python-ort /models/python-ort"),
        ("values-objectstore-azure.yaml", "elang-azure-credentials", "--source models --pattern 'elang/python-ort/*' --destination /models/.download && mv /models/.download/elang/python-ort /models/python-ort"),
    ],
)
def test_object_store_credentials_reach_only_the_fetch_container(values_file, secret, command):
    docs = _render(_values(values_file))
    pod = _pod(docs)
    (fetch,) = [c for c in pod["initContainers"] if c["name"] == "fetch-model-repository"]
    assert command in " ".join(fetch["command"])
    server = _container(docs)
    assert "--model-repository=/models/python-ort" in server["args"]
    assert {m["name"]: m.get("readOnly") for m in server["volumeMounts"]}["model-repository"] is True
    # Triton's environment, and so every Python stub's, holds no credential of the bucket
    assert "envFrom" not in server
    assert not {"GOOGLE_APPLICATION_CREDENTIALS", "AWS_ACCESS_KEY_ID"} & {e["name"] for e in server["env"]}
    assert "gcs-credentials" not in {m["name"] for m in server["volumeMounts"]}
    assert _secret_refs(server) <= {"prod-elang-serve-control"}
    if secret:
        assert _secret_refs(fetch) == {secret}
    else:  # gs: the key file, mounted in the fetch container only
        env = {e["name"]: e["value"] for e in fetch["env"]}
        mounts = {m["name"]: m for m in fetch["volumeMounts"]}
        assert env["CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"] == mounts["gcs-credentials"]["mountPath"] + "/key.json"
        assert mounts["gcs-credentials"]["readOnly"] is True
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["gcs-credentials"]["secret"]["secretName"] == "elang-gcs-key"
    assert {v["name"]: v for v in pod["volumes"]}["model-repository"]["emptyDir"]["sizeLimit"] == "4Gi"


def test_an_object_store_triton_reads_itself_gets_the_credentials_and_refuses_knobs():
    values = _values("values-objectstore-gcs.yaml")
    values["modelRepository"]["objectStore"]["fetch"] = False
    docs = _render(values)
    gcs = _container(docs)
    env = {e["name"]: e.get("value") for e in gcs["env"]}
    mounts = {m["name"]: m for m in gcs["volumeMounts"]}
    key = env["GOOGLE_APPLICATION_CREDENTIALS"]
    assert key.startswith(mounts["gcs-credentials"]["mountPath"] + "/") and key.endswith("/key.json")
    assert "--model-repository=gs://my-models/elang/python-ort" in gcs["args"]
    assert "initContainers" not in _pod(docs)
    azure = _values("values-objectstore-azure.yaml")
    azure["modelRepository"]["objectStore"]["fetch"] = False
    server = _container(_render(azure))
    assert server["envFrom"] == [{"secretRef": {"name": "elang-azure-credentials"}}]
    assert "--model-repository=as://myaccount/models/elang/python-ort" in server["args"]
    # Knobs need a local copy: said, not ignored
    values["serving"] = {"maxQueueSize": 8}
    with pytest.raises(HelmError, match="need a local copy of the repository"):
        _render(values)
    for uri, match in (("ftp://x", "must start with s3://, gs:// or as://"), ("as://account", "as://ACCOUNT/CONTAINER")):
        bad = _values("values-objectstore-azure.yaml")
        bad["modelRepository"]["objectStore"]["uri"] = uri
        with pytest.raises(HelmError, match=re.escape(match)):
            _render(bad)


def test_a_repository_baked_into_the_image_is_served_where_the_image_serves_it():
    ctr = _container(_render(_values("values-image.yaml")))
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert not re.search(r"^ENTRYPOINT", dockerfile, re.M)  # NVIDIA's entrypoint is kept
    assert cmd[0] == "tritonserver"
    assert [a for a in cmd if a.startswith("--model-repository=")] == [
        a for a in ctr["args"] if a.startswith("--model-repository=")
    ]
    assert "COPY ${MODEL_REPOSITORY} /models" in dockerfile
    assert not [m for m in ctr["volumeMounts"] if m["mountPath"] == "/models"]  # nothing hides the baked one


def test_serving_knobs_render_into_the_prepare_step_and_parse():
    from elang.ops.prepare import KNOB_OPTIONS
    from elang.ops.prepare import main as prepare_main  # noqa: F401 - the parser the args must fit

    docs = _render(_values("values-initcontainer.yaml"))
    fetch, prep = docs["Deployment"][0]["spec"]["template"]["spec"]["initContainers"]
    assert fetch["name"] == "fetch-model-repository"
    args = prep["args"][3:]
    assert "--source=/models/python-ort" in args and "--build-engines" not in args
    given = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
    options = {opt for opt, _ in KNOB_OPTIONS.values()}
    knobs = {k: v for k, v in given.items() if k in options}
    assert knobs == {
        "--max-queue-size": "64",
        "--queue-timeout-s": "5",
        "--queue-scope": "routers",
        "--stage-timeout-s": "30",
    }
    assert "--model-repository=/prepared/repository" in _container(docs)["args"]
    # A fetched bucket is a local copy: its knobs are applied too
    values = _values("values-autoscaling.yaml")
    values["serving"] = {"maxQueueSize": 8}
    docs = _render(values)
    names = [c["name"] for c in _pod(docs)["initContainers"]]
    assert names == ["fetch-model-repository", "prepare-model-repository"]
    assert "--max-queue-size=8" in _pod(docs)["initContainers"][1]["args"]


def test_dashboard_queries_use_the_metrics_the_router_exports():
    from elang.triton import metrics

    exported = set(re.findall(r'fam\(\s*"(elang_[a-z_]+)"', Path(metrics.__file__).read_text()))
    names = dashboard_metric_names()
    assert {"elang_super_fraction", "elang_swift_energy", "elang_calibration_info"} <= names
    assert names <= exported, names - exported
    docs = _render(_values("values-autoscaling.yaml"))
    (cm,) = _dashboards(docs)
    assert json.loads(cm["data"]["elang-router.json"])["uid"] == "elang-serve-router"
    assert not _dashboards(_render(_values("values.yaml")))


@pytest.mark.parametrize("values_file", VALUE_FILES)
def test_every_container_runs_unprivileged_with_a_read_only_root(values_file):
    docs = _render(_values(values_file))
    pod = docs["Deployment"][0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for ctr in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = ctr["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, ctr["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], ctr["name"]
        # NVIDIA's entrypoint stays (the fetcher and the NGINX front door are other images)
        assert "command" not in ctr or ctr["name"] in ("fetch-model-repository", "front-door")


def test_the_control_api_is_locked_by_a_secret_that_no_manifest_shows():
    """Triton gets the restricted-API flags with the value from the Secret through the environment:
    the value is in the Secret alone, never in an argument, an env value or a ConfigMap."""
    import base64

    docs = _render(_values("values.yaml"))
    (secret,) = docs["Secret"]
    value = base64.b64decode(secret["data"]["admin-key"]).decode()
    assert len(value) >= 32
    ctr = _container(docs)
    flags = [a for a in ctr["args"] if "restricted" in a]
    assert flags == [
        "--http-restricted-api=model-repository,logging,trace:elang-admin-key=$(ELANG_ADMIN_KEY)",
        "--grpc-restricted-protocol=model-repository,logging,trace:elang-admin-key=$(ELANG_ADMIN_KEY)",
    ]
    env = {e["name"]: e for e in ctr["env"]}
    assert env["ELANG_ADMIN_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "admin-key",
    }
    for kind, items in docs.items():
        if kind == "Secret":
            continue
        assert value not in json.dumps(items), kind  # no ConfigMap, argument list or annotation holds it
    # A Secret the user manages: none is rendered, and the container reads that one.
    values = _values("values.yaml")
    values["server"]["controlSecret"]["existingSecret"] = "my-elang-control"
    docs = _render(values)
    assert "Secret" not in docs
    assert {e["name"]: e for e in _container(docs)["env"]}["ELANG_ADMIN_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        "my-elang-control"
    )
    # An open model-repository API with explicit model control is refused.
    values["server"]["restrictedApis"] = ["logging"]
    with pytest.raises(HelmError, match="keep model-repository in server.restrictedApis"):
        _render(values)
    values["server"]["restrictedApis"] = ["model-repository", "everything"]
    with pytest.raises(HelmError, match='cannot restrict "everything"'):
        _render(values)


def test_the_pod_is_fenced_in():
    docs = _render(_values("values.yaml"))
    pod = docs["Deployment"][0]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["tmp"]["emptyDir"]["sizeLimit"] == "1Gi" and vols["dshm"]["emptyDir"]["sizeLimit"]
    (policy,) = docs["NetworkPolicy"]
    ports = [sorted(p["port"] for p in rule["ports"]) for rule in policy["spec"]["ingress"]]
    assert ports == [["grpc", "http"], ["metrics"]]
    values = _values("values.yaml")
    values["networkPolicy"]["clients"] = [{"podSelector": {"matchLabels": {"app": "gateway"}}}]
    (policy,) = _render(values)["NetworkPolicy"]
    assert policy["spec"]["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "gateway"}}}]


def test_the_front_door_sidecar_runs_the_configuration_elang_serve_writes():
    from elang.ops.frontdoor import nginx_config

    docs = _render(_values("values.yaml"))
    (cm,) = [x for x in docs["ConfigMap"] if x["metadata"]["name"].endswith("-frontdoor")]
    want = nginx_config("8000", "127.0.0.1:8010", 3145728, "/tmp", "/tmp/nginx.pid", "/dev/stderr")
    assert cm["data"]["nginx.conf"].split() == want.split()
    door = _container(docs, "front-door")
    assert door["command"] == ["nginx", "-c", "/etc/elang-frontdoor/nginx.conf"]
    assert {m["mountPath"] for m in door["volumeMounts"]} == {"/tmp", "/etc/elang-frontdoor"}
    values = _values("values.yaml")
    values["frontDoor"]["enabled"] = False
    docs = _render(values)
    assert [x["name"] for x in docs["Deployment"][0]["spec"]["template"]["spec"]["containers"]] == ["tritonserver"]
    assert "--http-port=8000" in _container(docs)["args"]


def test_the_disaggregated_layout_renders_two_pools_fenced_apart():
    docs = _render(_values("values-disaggregated.yaml"))
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
        assert sorted(d["metadata"]["name"] for d in docs[kind]) == ["prod-elang-serve", "prod-elang-serve-super"], kind
    deps = {d["metadata"]["name"]: d for d in docs["Deployment"]}
    router, sup = deps["prod-elang-serve"], deps["prod-elang-serve-super"]

    def labels(dep):
        return dep["spec"]["selector"]["matchLabels"]

    assert labels(router)["app.kubernetes.io/component"] == "router-pool"
    assert labels(sup)["app.kubernetes.io/component"] == "super-pool"
    for dep in (router, sup):  # each pool's selector picks its own pods only
        assert dep["spec"]["template"]["metadata"]["labels"].items() >= labels(dep).items()
    ctr = {n: next(x for x in d["spec"]["template"]["spec"]["containers"] if x["name"] == "tritonserver")
           for n, d in deps.items()}  # fmt: skip
    env = {e["name"]: e.get("value") for e in ctr["prod-elang-serve"]["env"]}
    assert env["ELANG_REMOTE_STAGES"] == "super=grpc://prod-elang-serve-super:8001/super"
    assert "ELANG_REMOTE_STAGES" not in {e["name"] for e in ctr["prod-elang-serve-super"]["env"]}
    assert [a for a in ctr["prod-elang-serve-super"]["args"] if a.startswith("--load-model")] in ([], ["--load-model=super"])
    assert ctr["prod-elang-serve-super"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in ctr["prod-elang-serve"]["resources"]["limits"]
    assert sup["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    hpas = {h["metadata"]["name"]: h["spec"] for h in docs["HorizontalPodAutoscaler"]}
    assert hpas["prod-elang-serve-super"]["scaleTargetRef"]["name"] == "prod-elang-serve-super"
    assert hpas["prod-elang-serve-super"]["metrics"][0]["pods"]["metric"]["name"] == "avg_time_queue_us_super"
    pols = {p["metadata"]["name"]: p["spec"] for p in docs["NetworkPolicy"]}
    serving = pols["prod-elang-serve-super"]["ingress"][0]
    assert serving["from"] == [{"podSelector": {"matchLabels": labels(router)}}]  # only the router pool
    svc = {s["metadata"]["name"]: s["spec"]["selector"] for s in docs["Service"]}
    assert svc["prod-elang-serve-super"] == labels(sup) and svc["prod-elang-serve"] == labels(router)
    # The single-pod default keeps its selector (no component label): upgrades keep their Deployment.
    (one,) = _render(_values("values.yaml"))["Deployment"]
    assert "app.kubernetes.io/component" not in labels(one)
    values = _values("values-disaggregated.yaml")
    values["superPool"]["stages"] = []
    with pytest.raises(HelmError, match="superPool.stages must name"):
        _render(values)
