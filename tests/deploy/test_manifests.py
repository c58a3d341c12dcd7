"""The routes past one Docker host, checked offline: deploy/kuberay/ against KubeRay's own CRD schemas (vendored in
deploy/kuberay/schemas/, see NOTICE there) and the shapes of the core Kubernetes objects it uses, deploy/vm/cluster.yaml
against the cluster-config schema of the installed Ray; then what the schemas cannot say: the Secrets referenced
exist, only the head holds MLflow and database credentials, the GPU group can hold the GPU spec's trials, the images
and versions agree, and the start commands refuse example secrets."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import REPO

from stacktune.search.interfaces.cluster import _JOB_ENV
from stacktune.search.spec.loading import load_spec

KUBERAY = REPO / "deploy" / "kuberay"
VM = REPO / "deploy" / "vm"
MANIFESTS = ["secrets.example.yaml", "storage.yaml", "raycluster.yaml", "rayjob.yaml"]
SPECS = ["gpu-search.yaml"]
SECRET_REFUSER = REPO / "docker" / "refuse-example-secrets.sh"
IMAGE_REFUSER = "/opt/stacktune/docker/refuse-example-secrets.sh"  # where the Dockerfile puts it
HEAD_ONLY = {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "STACKTUNE_OPTUNA_STORAGE"}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


# --- validation ---------------------------------------------------------------------------------------------------


def structural(schema: dict) -> dict:
    """A CRD's OpenAPI schema as the API server applies it, for jsonschema's Draft 4 validator.

    An object that lists properties takes no others unless it has x-kubernetes-preserve-unknown-fields: kubectl
    (1.27+) asks for strict field validation, so the server refuses them rather than pruning them in silence, and a
    typo fails. `nullable` admits null; x-kubernetes-int-or-string admits an integer or a string; an embedded
    resource has apiVersion, kind and metadata. CEL rules (x-kubernetes-validations) are not evaluated.
    """
    schema = dict(schema)
    if schema.get("nullable") and "type" in schema:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in schema:
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("x-kubernetes-embedded-resource"):
        schema["properties"] = {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            **schema.get("properties", {}),
        }
    if "properties" in schema:
        schema["properties"] = {name: structural(sub) for name, sub in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = structural(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        schema["items"] = structural(schema["items"])
    return schema


# Kubernetes' own rules for the core objects these files use (its API is not vendored): a DNS-1123 subdomain for a
# name, string maps for labels and a ConfigMap's or Secret's data, base64 in a Secret's data, a PVC's spec.
_NAME = {
    "type": "string",
    "maxLength": 253,
    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_KEYED = {
    "type": "object",
    "patternProperties": {r"^[-._a-zA-Z0-9]+$": {"type": "string"}},
    "additionalProperties": False,
}
_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
_QUANTITY = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": rf"^(\+|-)?{_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_NUMBER}))?$",
}
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": _NAME, "namespace": _NAME, "labels": _STRING_MAP, "annotations": _STRING_MAP},
}


def _core(kind: str, **properties) -> dict:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "additionalProperties": False,
        "properties": {"apiVersion": {"enum": ["v1"]}, "kind": {"enum": [kind]}, "metadata": OBJECT_META, **properties},
    }


CORE = {
    "Secret": _core(
        "Secret",
        type={"type": "string"},
        immutable={"type": "boolean"},
        stringData=_KEYED,
        data={
            **_KEYED,
            "patternProperties": {r"^[-._a-zA-Z0-9]+$": {"type": "string", "pattern": r"^[A-Za-z0-9+/]*=*$"}},
        },
    ),
    "ConfigMap": _core("ConfigMap", immutable={"type": "boolean"}, data=_KEYED, binaryData=_KEYED),
    "PersistentVolumeClaim": _core(
        "PersistentVolumeClaim",
        spec={
            "type": "object",
            "required": ["accessModes", "resources"],
            "additionalProperties": False,
            "properties": {
                "accessModes": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]},
                },
                "storageClassName": {"type": "string"},
                "volumeMode": {"enum": ["Filesystem", "Block"]},
                "volumeName": {"type": "string"},
                "resources": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["requests"],
                    "properties": {
                        "requests": {"type": "object", "required": ["storage"], "additionalProperties": _QUANTITY},
                        "limits": {"type": "object", "additionalProperties": _QUANTITY},
                    },
                },
            },
        },
    ),
}
CRDS = {"RayCluster": "raycluster.json", "RayJob": "rayjob.json"}


def _crd_schema(kind: str) -> dict:
    return json.loads((KUBERAY / "schemas" / CRDS[kind]).read_text())


VALIDATORS = {
    **{("ray.io/v1", kind): jsonschema.Draft4Validator(structural(_crd_schema(kind))) for kind in CRDS},
    **{("v1", kind): jsonschema.Draft4Validator(schema) for kind, schema in CORE.items()},
}
META = jsonschema.Draft4Validator(OBJECT_META)


def problems(doc: dict) -> list[str]:
    """What the API server would refuse in one document, one line each; [] when it is valid."""
    if not isinstance(doc, dict):
        return [f"not a mapping: {doc!r}"]
    validator = VALIDATORS.get((doc.get("apiVersion"), doc.get("kind")))
    if validator is None:
        return [f"no schema here for apiVersion {doc.get('apiVersion')!r}, kind {doc.get('kind')!r}"]
    found = [(list(e.absolute_path), e.message) for e in validator.iter_errors(doc)]
    if doc["kind"] in CRDS and isinstance(doc.get("metadata"), dict):
        # A CRD's schema leaves metadata to the API server, which checks it as for any object.
        found += [(["metadata", *e.absolute_path], e.message) for e in META.iter_errors(doc["metadata"])]
    return sorted(f"{'.'.join(map(str, path)) or '(root)'}: {message}" for path, message in found)


def test_every_deploy_file_is_checked_here():
    assert sorted(p.name for p in KUBERAY.glob("*.y*ml")) == sorted(MANIFESTS + SPECS)
    assert sorted(p.name for p in VM.iterdir()) == ["cluster.yaml", "head.env.example"]


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_documents_match_their_schemas(name):
    docs = _docs(KUBERAY / name)
    assert docs
    for doc in docs:
        assert problems(doc) == [], f"{name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"


def test_the_vendored_schemas_are_kuberays_v1_schemas_of_the_version_the_readme_installs():
    for kind in CRDS:
        schema = _crd_schema(kind)
        assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert "headGroupSpec" in _crd_schema("RayCluster")["properties"]["spec"]["required"]
    assert "rayClusterSpec" in _crd_schema("RayJob")["properties"]["spec"]["properties"]
    (vendored,) = set(re.findall(r"KubeRay v(\d+\.\d+\.\d+)", (KUBERAY / "schemas" / "NOTICE").read_text()))
    (installed,) = set(re.findall(r"kuberay-operator --version (\S+)", (KUBERAY / "README.md").read_text()))
    assert vendored == installed
    assert "Apache License" in (KUBERAY / "schemas" / "LICENSE").read_text()


def _raycluster() -> dict:
    (doc,) = [d for d in _docs(KUBERAY / "raycluster.yaml") if d["kind"] == "RayCluster"]
    return copy.deepcopy(doc)


def _head_container(doc: dict) -> dict:
    return doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


# Each breaks raycluster.yaml in one way the API server refuses; the message names what is wrong.
BROKEN = {
    "typo in a field": (
        lambda d: _rename(d["spec"]["headGroupSpec"], "rayStartParams", "rayStartParam"),
        "rayStartParam",
    ),
    "typo in a container field": (lambda d: _head_container(d).update(imagePullPolicyy="Always"), "imagePullPolicyy"),
    "a number where Ray wants a string": (
        lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
        "is not of type 'string'",
    ),
    "a string where an integer goes": (lambda d: d["spec"]["workerGroupSpecs"][0].update(replicas="2"), "replicas"),
    "a quantity that is not one": (lambda d: _head_container(d)["resources"]["limits"].update(cpu="two"), "cpu"),
    "a value outside an enum": (lambda d: d["spec"]["authOptions"].update(mode="tokens"), "tokens"),
    "a required field left out": (lambda d: d["spec"]["workerGroupSpecs"][0].pop("groupName"), "groupName"),
    "a name Kubernetes refuses": (lambda d: d["metadata"].update(name="Stack_Tune"), "Stack_Tune"),
}


@pytest.mark.parametrize("breakage", BROKEN, ids=list(BROKEN))
def test_a_broken_raycluster_is_refused(breakage):
    doc = _raycluster()
    assert problems(doc) == []
    breaks, named = BROKEN[breakage]
    breaks(doc)
    found = problems(doc)
    assert found and any(named in p for p in found), found


def test_broken_core_objects_are_refused():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": 1234}}
    assert any("stringData.password" in p for p in problems(secret))
    assert any(p.startswith("data.k:") for p in problems({**secret, "stringData": {}, "data": {"k": "no!"}}))  # base64
    pvc = yaml.safe_load((KUBERAY / "storage.yaml").read_text())
    pvc["spec"]["accessModes"] = ["ReadWriteAll"]
    assert any("accessModes" in p for p in problems(pvc))
    assert problems({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}})  # no schema: not let through


def test_int_or_string_and_preserved_fields_are_honoured():
    schema = structural(
        {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"a": {"type": "string"}},
                },
                "closed": {"type": "object", "properties": {"a": {"type": "string", "nullable": True}}},
            },
        }
    )
    valid = jsonschema.Draft4Validator(schema).is_valid
    assert valid({"port": 8265}) and valid({"port": "dashboard"}) and not valid({"port": 1.5})
    assert valid({"free": {"a": "x", "anything": [1]}}) and not valid({"free": {"a": 1}})
    assert valid({"closed": {"a": None}}) and not valid({"closed": {"b": "x"}}) and not valid({"other": 1})


# --- what the schemas cannot say ----------------------------------------------------------------------------------


def _clusters() -> dict[str, dict]:
    """The cluster specs: the RayCluster's, and the one each RayJob starts."""
    found = {"raycluster.yaml": _raycluster()["spec"]}
    for doc in _docs(KUBERAY / "rayjob.yaml"):
        if doc["kind"] == "RayJob":
            found[f"rayjob.yaml {doc['metadata']['name']}"] = doc["spec"]["rayClusterSpec"]
    return found


def _groups(spec: dict) -> dict[str, dict]:
    return {"head": spec["headGroupSpec"], **{g["groupName"]: g for g in spec.get("workerGroupSpecs", [])}}


def _ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]  # KubeRay's Ray container is the first


def _walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from _walk(child)


def _secret_refs(node) -> list[tuple[str, str]]:
    return [
        (n["secretKeyRef"]["name"], n["secretKeyRef"]["key"])
        for n in _walk(node)
        if isinstance(n, dict) and "secretKeyRef" in n
    ]


def _example_secrets() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["stringData"] for d in _docs(KUBERAY / "secrets.example.yaml")}


CLUSTERS = _clusters()


def test_every_secret_referenced_is_in_the_example_with_its_key():
    secrets = _example_secrets()
    for name in MANIFESTS:
        for secret, key in _secret_refs(_docs(KUBERAY / name)):
            assert key in secrets.get(secret, {}), f"{name} reads key {key!r} of Secret {secret!r}"
    for where, spec in CLUSTERS.items():
        assert "auth_token" in secrets[spec["authOptions"]["secretName"]], where  # the key KubeRay reads


def test_example_secrets_hold_only_obvious_placeholders():
    for name, values in _example_secrets().items():
        assert any("change-me" in v for v in values.values()), name
        for key in ("auth_token", "password", "url"):
            assert key not in values or "change-me" in values[key], f"{name}.{key}"


@pytest.mark.parametrize("where", CLUSTERS)
def test_ray_token_auth_on_a_ray_version_that_has_it(where):
    spec = CLUSTERS[where]
    assert spec["authOptions"] == {"mode": "token", "secretName": "stacktune-ray-token"}
    floor = re.search(r'"ray\[[^\]]*\]>=([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert _version(spec["rayVersion"]) >= max(_version("2.52.0"), _version(floor))  # KubeRay's minimum for tokens
    assert len({s["rayVersion"] for s in CLUSTERS.values()}) == 1


@pytest.mark.parametrize("where", CLUSTERS)
def test_only_the_head_holds_mlflow_and_database_credentials(where):
    groups = _groups(CLUSTERS[where])
    env = {e["name"]: e for e in _ray_container(groups.pop("head"))["env"]}
    assert HEAD_ONLY <= set(env)
    for name in HEAD_ONLY:
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"], name  # never written out
    for group_name, group in groups.items():
        pod = group["template"]["spec"]
        assert _secret_refs(pod) == [], group_name
        assert not any("envFrom" in c for c in pod["containers"]), group_name
        assert not any("secret" in v for v in pod.get("volumes", [])), group_name
        names = {e["name"] for c in pod["containers"] for e in c.get("env", [])}
        assert not any(n.startswith(("MLFLOW_", "STACKTUNE_OPTUNA")) for n in names), group_name


@pytest.mark.parametrize("where", CLUSTERS)
def test_the_head_runs_drivers_only_and_serves_the_dashboard(where):
    head = CLUSTERS[where]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    port = int(head["rayStartParams"]["dashboard-port"])
    assert port == 8265 and {"name": "dashboard", "containerPort": port} in _ray_container(head)["ports"]


def test_the_gpu_group_holds_the_gpu_specs_trials():
    spec = load_spec(KUBERAY / "gpu-search.yaml")
    assert (spec.resources.cpus_per_trial, spec.resources.gpus_per_trial) == (1, 0.25)
    groups = _groups(CLUSTERS["raycluster.yaml"])
    gpu = [g for g in groups.values() if "nvidia.com/gpu" in _ray_container(g)["resources"].get("limits", {})]
    assert [g["groupName"] for g in gpu] == ["gpu"]
    resources = _ray_container(gpu[0])["resources"]
    gpus = int(resources["limits"]["nvidia.com/gpu"])
    # An extended resource is asked for in limits; requests, if given, must be the same.
    assert gpus >= 1 and resources["requests"].get("nvidia.com/gpu", gpus) == gpus
    trials = gpus / spec.resources.gpus_per_trial
    assert int(resources["limits"]["cpu"]) >= trials * spec.resources.cpus_per_trial  # every GPU share gets its CPU


def test_images_are_one_repository_cpu_and_gpu_builds():
    tags = {}
    for where, spec in CLUSTERS.items():
        for group_name, group in _groups(spec).items():
            repository, tag = _ray_container(group)["image"].rsplit(":", 1)
            gpu = "nvidia.com/gpu" in _ray_container(group)["resources"].get("limits", {})
            assert tag == ("gpu" if gpu else "cpu"), f"{where} {group_name}"
            tags.setdefault(repository, set()).add(tag)
    assert tags == {"registry.example.com/stacktune": {"cpu", "gpu"}}


@pytest.mark.parametrize("where", CLUSTERS)
def test_every_ray_pod_shares_the_checkpoint_volume(where):
    (pvc,) = _docs(KUBERAY / "storage.yaml")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for group_name, group in _groups(CLUSTERS[where]).items():
        pod, container = group["template"]["spec"], _ray_container(group)
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
        }
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        (path,) = [e["value"] for e in container["env"] if e["name"] == "STACKTUNE_STORAGE_PATH"]
        mount = next(m for m in mounts if path.startswith(m.rstrip("/") + "/"))
        assert claims[mounts[mount]] == pvc["metadata"]["name"], f"{where} {group_name}"


def _example_secret_vars(container: dict) -> set[str]:
    """The container's variables whose example value is a change-me: RAY_AUTH_TOKEN (KubeRay's, from authOptions)
    and those it takes from a Secret."""
    secrets = _example_secrets()
    refs = {e["name"]: _secret_refs(e) for e in container.get("env", [])}
    return {"RAY_AUTH_TOKEN"} | {name for name, r in refs.items() if r and "change-me" in secrets[r[0][0]][r[0][1]]}


def _as_kuberay_runs_it(container: dict) -> str:
    """The container's shell line as KubeRay 1.7 builds it (BuildPod): ` CMD  && ulimit ...; ray start ...`."""
    command = "".join(f" {part} " for part in container["command"]).replace(IMAGE_REFUSER, str(SECRET_REFUSER))
    return f"{command} && ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; echo ray-start"


@pytest.mark.parametrize("where", CLUSTERS)
def test_every_ray_container_refuses_its_example_secrets(where):
    for group_name, group in _groups(CLUSTERS[where]).items():
        container = _ray_container(group)
        (line,) = container["command"]
        named = set(line.split(IMAGE_REFUSER, 1)[1].split("||")[0].split())
        assert named == _example_secret_vars(container), f"{where} {group_name}"


def test_the_head_does_not_start_ray_with_an_example_secret():
    secrets = _example_secrets()
    container = _ray_container(CLUSTERS["raycluster.yaml"]["headGroupSpec"])
    example = {"RAY_AUTH_TOKEN": secrets["stacktune-ray-token"]["auth_token"]}
    example |= {e["name"]: secrets[ref[0][0]][ref[0][1]] for e in container["env"] if (ref := _secret_refs(e))}
    base = {"PATH": os.environ["PATH"]}

    def run(env: dict) -> subprocess.CompletedProcess:
        line = _as_kuberay_runs_it(container)
        return subprocess.run(["bash", "-c", "--", line], env={**base, **env}, capture_output=True, text=True)

    refused = run(example)
    assert refused.returncode == 1 and "ray-start" not in refused.stdout
    assert "still holds an example value" in refused.stderr
    filled = run({k: v.replace("change-me", "s3cret") for k, v in example.items()})
    assert filled.returncode == 0 and filled.stdout.strip() == "ray-start", filled.stderr


def test_the_rayjob_runs_its_configmaps_spec_as_submit_would(tmp_path):
    docs = _docs(KUBERAY / "rayjob.yaml")
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    (job,) = [d for d in docs if d["kind"] == "RayJob"]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]
    volumes = {v["name"]: v["configMap"]["name"] for v in head["template"]["spec"]["volumes"] if "configMap" in v}
    (mount,) = [m for m in _ray_container(head)["volumeMounts"] if m["name"] in volumes]
    command = job["spec"]["entrypoint"].split()
    assert command[:2] == ["stacktune", "search"]
    folder, key = command[2].rsplit("/", 1)
    assert folder == mount["mountPath"]
    (tmp_path / key).write_text(maps[volumes[mount["name"]]][key])
    spec = load_spec(tmp_path / key)
    assert spec.trials_per_depth >= 1 and spec.dataset.csv is None  # a built-in dataset: nothing else to mount
    # The job's environment is that of `stacktune submit`'s jobs, and holds nothing secret.
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"]) == {"env_vars": _JOB_ENV}


# --- deploy/vm/cluster.yaml ---------------------------------------------------------------------------------------


def _ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _vm() -> dict:
    return yaml.safe_load((VM / "cluster.yaml").read_text())


def test_vm_cluster_config_passes_rays_own_checks():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _vm()
    jsonschema.Draft7Validator(_ray_schema()).validate(config)
    # What `ray up` does to it before anything starts: the local provider's defaults, then Ray's validation.
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["available_node_types"]["local.cluster.node"]["min_workers"] == len(
        config["provider"]["worker_ips"]
    )


@pytest.mark.parametrize(
    "breaks",
    [
        lambda c: _rename(c, "head_start_ray_commands", "head_start_ray_command"),
        lambda c: _rename(c["auth"], "ssh_user", "ssh_usr"),
        lambda c: c.update(max_workers="two"),
        lambda c: c.update(setup_commands="pip install stacktune"),
    ],
    ids=["typo", "typo in auth", "wrong type", "commands not a list"],
)
def test_a_broken_vm_cluster_config_is_refused(breaks):
    config = _vm()
    breaks(config)
    assert not jsonschema.Draft7Validator(_ray_schema()).is_valid(config)


def test_vm_nodes_install_the_pinned_torch_first_then_this_stacktune():
    commands = _vm()["setup_commands"]
    torch = next(i for i, c in enumerate(commands) if "torch==" in c)
    install = next(i for i, c in enumerate(commands) if "stacktune-" in c and ".whl[cluster]" in c)
    assert torch < install
    pin = re.search(r"torch==\S+", commands[torch]).group(0)
    assert f"TORCH_SPEC ?= {pin}" in (REPO / "Makefile").read_text()
    assert f'ARG TORCH_SPEC="{pin}"' in (REPO / "Dockerfile").read_text()
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert f"stacktune-{version}-py3-none-any.whl[cluster]" in commands[install]


def test_vm_nodes_use_token_auth_and_only_the_head_gets_credentials():
    config = _vm()
    head, worker = config["head_start_ray_commands"][-1], config["worker_start_ray_commands"][-1]
    for flag in ("--head", "--num-cpus=0", "--dashboard-host=0.0.0.0", "--dashboard-port=8265"):
        assert flag in head.split()
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in worker
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    text = (VM / "cluster.yaml").read_text()
    assert not any(name in text for name in HEAD_ONLY)  # they live in the head's env file, never in the config
    example = dict(
        line.split("=", 1)
        for line in (VM / "head.env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert set(example) == HEAD_ONLY
    assert "change-me" in example["MLFLOW_TRACKING_PASSWORD"] and "change-me" in example["STACKTUNE_OPTUNA_STORAGE"]


def _fake_node(home: Path) -> None:
    """A venv whose `ray` prints its arguments and the environment stacktune reads."""
    bin_dir = home / "stacktune-venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\n')
    (bin_dir / "ray").write_text(
        '#!/bin/sh\necho "ray $*"\nenv | grep -E "^(RAY_AUTH_MODE|STACKTUNE_|MLFLOW_)" | sort\n'
    )
    (bin_dir / "ray").chmod(0o755)


def test_vm_head_starts_ray_only_with_a_filled_head_env(tmp_path):
    _fake_node(tmp_path)
    config = _vm()
    env = {"HOME": str(tmp_path), "PATH": os.environ["PATH"], "RAY_HEAD_IP": "10.0.0.1"}

    def run(commands: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", " && ".join(f"( {c} )" for c in commands)], env=env, capture_output=True, text=True
        )

    missing = run(config["head_start_ray_commands"])
    assert missing.returncode == 1 and "no ~/stacktune-head.env" in missing.stderr and "--head" not in missing.stdout
    (tmp_path / "stacktune-head.env").write_text((VM / "head.env.example").read_text())
    example = run(config["head_start_ray_commands"])
    assert example.returncode == 1 and "change-me" in example.stderr and "--head" not in example.stdout
    (tmp_path / "stacktune-head.env").write_text((VM / "head.env.example").read_text().replace("change-me", "s3cret"))
    started = run(config["head_start_ray_commands"])
    assert started.returncode == 0, started.stderr
    assert "ray start --head" in started.stdout and "--num-cpus=0" in started.stdout
    assert "MLFLOW_TRACKING_PASSWORD=s3cret-mlflow" in started.stdout and "RAY_AUTH_MODE=token" in started.stdout
    worker = run(config["worker_start_ray_commands"])
    assert worker.returncode == 0 and "ray start --address=10.0.0.1:6379" in worker.stdout
    assert "RAY_AUTH_MODE=token" in worker.stdout and "MLFLOW_" not in worker.stdout


# --- one set of versions ------------------------------------------------------------------------------------------

CLUSTER_PINS = REPO / "constraints" / "cluster.txt"


def _cluster_pins() -> dict[str, str]:
    lines = (line.split("#", 1)[0].strip() for line in CLUSTER_PINS.read_text().splitlines())
    return dict(line.split("==") for line in lines if line)


def test_the_image_the_vm_nodes_and_the_manifests_run_the_one_pinned_ray():
    ray = _cluster_pins()["ray"]
    floor = re.search(r'"ray\[[^\]]*\]>=([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert _version(ray) >= _version(floor)
    assert {spec["rayVersion"] for spec in CLUSTERS.values()} == {ray}
    # The image installs with the constraints, and the build context holds them.
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY constraints/cluster.txt constraints/cluster.txt" in dockerfile
    (install,) = [line for line in dockerfile.splitlines() if "[cluster]" in line and "pip install" in line]
    assert "-c constraints/cluster.txt" in install
    assert "!constraints/cluster.txt" in (REPO / ".dockerignore").read_text().splitlines()
    # `ray up` copies the constraints to every node and installs stacktune with them.
    config = _vm()
    mounted = {remote for remote, local in config["file_mounts"].items() if local == "./constraints"}
    (remote,) = mounted
    (install,) = [c for c in config["setup_commands"] if ".whl[cluster]" in c]
    assert f"-c {remote}/cluster.txt" in install


@pytest.mark.parametrize("where", CLUSTERS)
def test_replica_bounds_take_effect_through_the_autoscaler_without_a_token_for_jobs(where):
    spec = CLUSTERS[where]
    assert spec["enableInTreeAutoscaling"] is True  # without it minReplicas and maxReplicas do nothing
    for group in spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
        if "nvidia.com/gpu" in _ray_container(group)["resources"]["limits"]:
            assert group["minReplicas"] >= 1  # a GPU search stops at once when no GPU node is up
    # The autoscaler, a container beside the head, reads the API token; the pods and the Ray containers do not.
    for group in _groups(spec).values():
        assert group["template"]["spec"]["automountServiceAccountToken"] is False
        assert not any(m["name"] == "autoscaler-token" for m in _ray_container(group)["volumeMounts"])
    head_volumes = {v["name"]: v for v in spec["headGroupSpec"]["template"]["spec"]["volumes"]}
    sources = head_volumes["autoscaler-token"]["projected"]["sources"]
    assert any("serviceAccountToken" in source for source in sources)
    mounts = spec["autoscalerOptions"]["volumeMounts"]
    assert {m["name"]: m["mountPath"] for m in mounts} == {
        "autoscaler-token": "/var/run/secrets/kubernetes.io/serviceaccount"
    }
