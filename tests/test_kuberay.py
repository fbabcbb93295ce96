"""The KubeRay manifests (kubernetes/), checked offline against the CRD schemas of a pinned KubeRay release
(tests/kuberay/: v1.7.0's files, unchanged) and against the promises cluster.yaml makes: the same image, node
sizes and token authentication, a Ray version that is the one pinned here, and a RayJob whose command is one
`tune-digits reproduce` accepts. Unknown fields are errors, as `kubectl apply`'s strict validation makes them."""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tune_digits.cli import main

ROOT = Path(__file__).resolve().parents[1]
CRDS = Path(__file__).parent / "kuberay"
# Where tests/kuberay/README.md says each file comes from (KubeRay v1.7.0): its git blob id there.
BLOBS = {"ray.io_rayclusters.yaml": "ff0be58ada3bd457605eff1f258c16df21e61e21",
         "ray.io_rayjobs.yaml": "c7d3f081af8cf08c256a8c33a0c3b6ea28b816a0"}
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 2 MB of YAML


def manifest(name: str) -> dict:
    return yaml.safe_load((ROOT / "kubernetes" / name).read_text())


def strict(schema):
    """The CRD's structural schema with unknown fields refused: Kubernetes drops them silently unless the
    client validates strictly, so a misspelt key would otherwise pass and do nothing."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    return [strict(v) for v in schema] if isinstance(schema, list) else schema


@pytest.fixture(scope="module")
def schemas() -> dict:
    """Kind → a validator of the openAPIV3Schema of its served v1 version (made once: checking a schema of this
    size against the metaschema, as jsonschema.validate does each call, takes seconds)."""
    out = {}
    for name in BLOBS:
        crd = yaml.load((CRDS / name).read_text(), Loader=LOADER)
        [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1" and v["served"]]
        schema = strict(version["schema"]["openAPIV3Schema"])
        out[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(schema)
    return out


def validate(document: dict, schemas: dict) -> None:
    assert document["apiVersion"] == "ray.io/v1"
    schemas[document["kind"]].validate(document)


def test_the_crds_are_kuberays_files_unchanged():
    for name, blob in BLOBS.items():
        data = (CRDS / name).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, name
    assert "Apache License" in (CRDS / "LICENSE").read_text()


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_the_manifests_validate_against_the_crds(name, schemas):
    validate(manifest(name), schemas)


BREAKS = {
    "misspelt key": lambda s: s.__setitem__("workerGroupSpec", s.pop("workerGroupSpecs")),
    "replicas not a number": lambda s: s["workerGroupSpecs"][0].__setitem__("maxReplicas", "four"),
    "unknown auth mode": lambda s: s["authOptions"].__setitem__("mode", "password"),
    "no head group": lambda s: s.pop("headGroupSpec"),
    "container without a name": lambda s: s["headGroupSpec"]["template"]["spec"]["containers"][0].pop("name"),
}


@pytest.mark.parametrize("kind", ["raycluster.yaml", "rayjob.yaml"])
@pytest.mark.parametrize("name", BREAKS)
def test_a_broken_copy_fails_validation(kind, name, schemas):
    document = copy.deepcopy(manifest(kind))
    BREAKS[name](document["spec"] if kind == "raycluster.yaml" else document["spec"]["rayClusterSpec"])
    with pytest.raises(jsonschema.ValidationError):
        validate(document, schemas)


def test_the_rayjob_starts_the_raycluster_and_runs_reproduce_on_storage():
    cluster, job = manifest("raycluster.yaml"), manifest("rayjob.yaml")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"]  # one cluster, described twice
    args = job["spec"]["entrypoint"].split()
    assert args[:2] == ["tune-digits", "reproduce"]
    assert args[args.index("--address") + 1] == "auto" and args[args.index("--storage") + 1].startswith("s3://")
    main.commands["reproduce"].make_context("reproduce", args[2:])  # every option is one reproduce takes


def test_the_cluster_is_cluster_yamls():
    aws = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    spec = manifest("raycluster.yaml")["spec"]
    pinned = [line.split("==")[1] for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line.startswith("ray==")]
    assert [spec["rayVersion"]] == pinned
    assert spec["authOptions"] == {"mode": "token"}  # the operator makes the secret and sets RAY_AUTH_MODE=token
    head, [workers] = spec["headGroupSpec"], spec["workerGroupSpecs"]
    assert head["rayStartParams"]["num-cpus"] == str(aws["available_node_types"]["head"]["resources"]["CPU"])
    gpu = aws["available_node_types"]["gpu"]
    assert (workers["minReplicas"], workers["maxReplicas"]) == (gpu["min_workers"], gpu["max_workers"])
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 60 * aws["idle_timeout_minutes"]
    containers = [*head["template"]["spec"]["containers"], *workers["template"]["spec"]["containers"]]
    # m5.large head, g5.xlarge workers (2 vCPU / 8 GiB; 4 vCPU / 16 GiB / 1 GPU), requests = limits.
    sizes = [{k: c["resources"]["limits"].get(k) for k in ("cpu", "memory", "nvidia.com/gpu")} for c in containers]
    assert sizes == [{"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": None},
                     {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}]
    assert all(c["resources"]["requests"] == c["resources"]["limits"] for c in containers)
    # One image everywhere, the Dockerfile's: Ray's image of the pinned Ray, tune-digits installed pinned.
    assert {c["image"] for c in containers} == {"tune-digits:0.1.0"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{pinned[0]}-py311-gpu" in dockerfile and "-c constraints.txt" in dockerfile
    assert all({"name": "RAY_USAGE_STATS_ENABLED", "value": "0"} in c["env"] for c in containers)
