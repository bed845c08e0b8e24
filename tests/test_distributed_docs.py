"""docs/distributed.md's Kubernetes manifest: it parses, its parts agree with each other, and
the TF_CONFIG its pods build (run in a real shell) is the cluster odapi joins."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from odapi.cli import build_parser
from odapi.engine import cluster

DOC = Path(__file__).parent.parent / "docs" / "distributed.md"


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict]:
    (block,) = re.findall(r"reads the manifest below.*?```yaml\n(.*?)```", DOC.read_text(),
                          re.S)
    documents = list(yaml.safe_load_all(block))
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [("v1", "Service"),
                                                                 ("batch/v1", "Job")]
    return {d["kind"]: d for d in documents}


def pod_script(manifest: dict) -> tuple[dict, list[str]]:
    (container,) = manifest["Job"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    return container, container["args"]


def test_the_job_and_the_service_agree(manifest):
    service, job = manifest["Service"], manifest["Job"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert service["spec"]["clusterIP"] == "None"  # headless: a DNS name per pod
    assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    assert pod["subdomain"] == service["metadata"]["name"]
    assert spec["completionMode"] == "Indexed" and pod["restartPolicy"] == "Never"
    container, _ = pod_script(manifest)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert spec["completions"] == spec["parallelism"] == int(env["WORKERS"])
    assert float(env["ODAPI_CLUSTER_TIMEOUT"]) > 0
    assert [p["containerPort"] for p in container["ports"]] == \
        [p["port"] for p in service["spec"]["ports"]]
    (mount,) = container["volumeMounts"]
    (volume,) = pod["volumes"]
    assert mount["name"] == volume["name"] and volume["persistentVolumeClaim"]["claimName"]


@pytest.mark.parametrize("index", [0, 1])
def test_each_pod_builds_the_tf_config_of_its_place(manifest, index, monkeypatch):
    """The pod's script, run by sh up to its `odapi ...` line: TF_CONFIG names every pod by
    its DNS name, in index order, and this pod's index; odapi reads it as that worker."""
    container, (script,) = pod_script(manifest)
    lines = script.strip().splitlines()
    assert lines[-1].startswith("odapi train ")  # not exec'd: PID 1 ignores the join timeout
    env = {e["name"]: e["value"] for e in container["env"]}
    shown = subprocess.run(["sh", "-c", "\n".join([*lines[:-1], 'printf %s "$TF_CONFIG"'])],
                           env={"PATH": "/usr/bin:/bin", "JOB_COMPLETION_INDEX": str(index),
                                **env}, capture_output=True, text=True, check=True).stdout
    job, service = manifest["Job"], manifest["Service"]
    port = service["spec"]["ports"][0]["port"]
    hosts = [f"{job['metadata']['name']}-{i}.{service['metadata']['name']}:{port}"
             for i in range(int(env["WORKERS"]))]
    assert json.loads(shown) == {"cluster": {"worker": hosts},
                                 "task": {"type": "worker", "index": index}}
    monkeypatch.setenv("TF_CONFIG", shown)
    assert cluster.is_chief() == (index == 0)
    assert cluster.workers() == hosts and cluster.this_worker() == f"worker {index}"
    args = build_parser().parse_args(lines[-1].split()[1:])  # odapi's own command line
    assert args.command == "train" and args.model_dir is not None
