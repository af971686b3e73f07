"""The Kubernetes example (deploy/kubernetes), tested without a cluster: its manifests
are valid for a pinned Kubernetes version (kubernetes-validate's own schemas, offline);
probes, ports, environment variables and configuration keys agree with what the host
serves and accepts (its `run --help`); and the real host starts on the ConfigMap's
configuration, the Secret's password file and a plugin directory laid out as the
kubelet lays a ConfigMap volume (a `..data` symlink to a timestamped folder), serves
the ConfigMap's plugins and follows its update.

Mounts are laid out under a temporary root, and the paths in the configuration and in
the environment point there. Overridden from the environment, since the local stack is
not the cluster the example is for: `kafka.brokers` and `security.protocol` (the stack
has neither TLS nor SASL; test_security.py runs SASL over TLS with the same password
variable), and `admin.listen` only if port 9898 is taken on this machine."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from streamhost_kit.kafka import BROKERS
from streamhost_kit.stack import HOST_BIN, PLUGINS_BUILT, ROOT, admin_answer, free_port
from streamhost_kit.util import wait_until

EXAMPLE = ROOT / "deploy" / "kubernetes"
HOWTO = ROOT / "docs" / "howto" / "deploy-on-kubernetes.md"
# The Kubernetes version the manifests are checked against (a schema kubernetes-validate ships).
KUBERNETES = "1.33.0"


def documents() -> list[dict]:
    """Every object of the kustomization's resources."""
    kustomization = yaml.safe_load((EXAMPLE / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((EXAMPLE / name).read_text()) if d)
    return docs


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def host_help() -> str:
    return subprocess.run([str(HOST_BIN), "run", "--help"], capture_output=True, text=True, check=True).stdout


def flat_keys(table: dict, prefix: str = "") -> list[str]:
    """`section.key` of a TOML document; `kafka.client` (librdkafka's options) is one key."""
    keys = []
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key != "kafka.client":
            keys.extend(flat_keys(v, f"{key}."))
        else:
            keys.append(key)
    return keys


def test_the_manifests_are_valid_and_agree_with_the_host():
    docs = documents()
    for d in docs:
        kubernetes_validate.validate(d, KUBERNETES, strict=True)
        assert "namespace" not in d["metadata"], d["metadata"]
    assert "namespace" not in yaml.safe_load((EXAMPLE / "kustomization.yaml").read_text())
    assert {d["kind"] for d in docs} == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}

    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for kind in ["requests", "limits"]:
        assert {"cpu", "memory"} <= set(container["resources"][kind]), container["resources"]

    # Probes and ports: the admin server's paths, on the port admin.listen binds.
    config_map = one(docs, "ConfigMap", "streamhost-config")
    config = tomllib.loads(config_map["data"]["streamhost.toml"])
    listen_host, _, listen_port = config["admin"]["listen"].rpartition(":")
    assert listen_host == "0.0.0.0", "probes reach the pod's address, not its loopback"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["admin"] == int(listen_port)
    admin_rs = (ROOT / "host" / "src" / "admin.rs").read_text()
    for probe, path in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")]:
        get = container[probe]["httpGet"]
        assert get["path"] == path and f'"{path}"' in admin_rs, (probe, get)
        assert ports.get(get["port"], get["port"]) == int(listen_port), (probe, get)

    service = one(docs, "Service")
    (service_port,) = service["spec"]["ports"]
    assert ports.get(service_port["targetPort"], service_port["targetPort"]) == int(listen_port)
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == listen_port
    assert annotations["prometheus.io/path"] == "/metrics" and '"/metrics"' in admin_rs
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(docs, "PodDisruptionBudget")
    for selector in [service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"],
                     deployment["spec"]["selector"]["matchLabels"]]:
        assert selector.items() <= labels.items(), selector

    # Every configuration key and variable is one the host takes.
    help_text = host_help()
    known_keys = set(re.findall(r"(?m)^  ([a-z_]+\.[a-z_]+)\s+STREAMHOST_", help_text))
    assert len(known_keys) > 30, help_text[:500]
    unknown = [k for k in flat_keys(config) if k not in known_keys]
    assert not unknown, f"configuration keys the host does not have: {unknown}"
    variables = set(re.findall(r"\b(STREAMHOST_[A-Z_]+|RUST_LOG)\b", help_text))
    client_prefix = "STREAMHOST_KAFKA_CLIENT_"
    for var in container["env"]:
        name = var["name"]
        assert name in variables or (name.startswith(client_prefix) and client_prefix in help_text), name

    # The variables that name files name files of the pod's volumes.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    env = {v["name"]: v["value"] for v in container["env"]}
    secret = one(docs, "Secret")
    password_file = Path(env["STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD_FILE"])
    (secret_volume,) = [n for n, v in volumes.items() if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]]
    assert password_file.parent == Path(mounts[secret_volume])
    assert password_file.name in {**secret.get("data", {}), **secret.get("stringData", {})}
    config_file = Path(env["STREAMHOST_CONFIG"])
    (config_volume,) = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "streamhost-config"]
    assert config_file.parent == Path(mounts[config_volume]) and config_file.name in config_map["data"]
    (plugins_volume,) = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == "streamhost-plugins"]
    assert config["plugins"]["dir"] == mounts[plugins_volume]


def test_the_howto_plugins_command_makes_the_configmap_the_kustomization_takes(tmp_path):
    """The how-to's `kubectl create configmap ... --dry-run=client -o yaml`, run as it
    stands (kubectl ships with this kind of machine), gives a ConfigMap of the name
    the Deployment mounts, with the files as binary data."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed")
    command = plugins_command()
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    generated = yaml.safe_load(out)
    kubernetes_validate.validate(generated, KUBERNETES, strict=True)
    shipped = yaml.safe_load((EXAMPLE / "plugins.yaml").read_text())
    assert generated["metadata"]["name"] == shipped["metadata"]["name"]
    assert sorted(generated["binaryData"]) == ["10-enrich.wasm", "20-quality.wasm"]
    assert base64.b64decode(generated["binaryData"]["20-quality.wasm"]) == (PLUGINS_BUILT / "quality.wasm").read_bytes()
    # The kustomization builds with it (kubectl's own kustomize).
    build = tmp_path / "kustomization"
    shutil.copytree(EXAMPLE, build)
    (build / "plugins.yaml").write_text(out)
    built = subprocess.run([kubectl, "kustomize", str(build)], capture_output=True, text=True, check=True).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(built) if d]
    assert sorted(kinds) == sorted(d["kind"] for d in documents())


def plugins_command() -> list[str]:
    """The how-to's command, its `plugins/dist` the built plugins', its output to stdout."""
    text = HOWTO.read_text()
    block = re.search(r"```bash\n\s*(kubectl create configmap .*?)\n\s*```", text, re.S)
    assert block, "the how-to's kubectl command"
    words = block.group(1).replace("\\\n", " ").split()
    assert words[-2] == ">", words
    return [w.replace("plugins/dist/", f"{PLUGINS_BUILT}/") for w in words[:-2]]


class Volume:
    """A ConfigMap or Secret volume as the kubelet writes it: the files in a timestamped
    folder, `..data` a symlink to it, and one symlink per key through `..data`; an
    update writes a new folder and renames a new `..data` over the old."""

    def __init__(self, at: Path):
        self.at = at
        at.mkdir(parents=True)
        self.keys: set[str] = set()
        self.generation = 0

    def write(self, files: dict[str, bytes]) -> None:
        self.generation += 1
        folder = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self.generation:09d}"
        (self.at / folder).mkdir()
        for key, content in files.items():
            (self.at / folder / key).write_bytes(content)
        old = os.readlink(self.at / "..data") if (self.at / "..data").is_symlink() else None
        os.symlink(folder, self.at / "..data_tmp")
        os.rename(self.at / "..data_tmp", self.at / "..data")
        for key in files.keys() - self.keys:
            os.symlink(f"..data/{key}", self.at / key)
        for key in self.keys - files.keys():
            (self.at / key).unlink()
        self.keys = set(files)
        if old:
            shutil.rmtree(self.at / old)


def object_files(obj: dict) -> dict[str, bytes]:
    files = {k: v.encode() for k, v in obj.get("stringData", {}).items()}
    binary = "data" if obj["kind"] == "Secret" else "binaryData"
    files.update({k: base64.b64decode(v) for k, v in obj.get(binary, {}).items()})
    if obj["kind"] == "ConfigMap":
        files.update({k: v.encode() for k, v in obj.get("data", {}).items()})
    return files


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def test_the_host_runs_as_the_pod_would(stack_up, tmp_path):
    docs = documents()
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    root = tmp_path / "pod"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}

    def rooted(text: str) -> str:
        for path in sorted(mounts.values(), key=len, reverse=True):
            text = text.replace(path, f"{root}{path}")
        return text

    # The plugins ConfigMap as the how-to makes it (the shipped one is a placeholder).
    plugins_map = {"kind": "ConfigMap", "binaryData": {
        "10-enrich.wasm": base64.b64encode((PLUGINS_BUILT / "enrich.wasm").read_bytes()).decode(),
        "20-quality.wasm": base64.b64encode((PLUGINS_BUILT / "quality.wasm").read_bytes()).decode(),
    }}
    volumes = {}
    for v in pod["volumes"]:
        source = v.get("configMap", {}).get("name") or v["secret"]["secretName"]
        obj = plugins_map if source == "streamhost-plugins" else next(
            d for d in docs if d["kind"] in ("ConfigMap", "Secret") and d["metadata"]["name"] == source)
        files = object_files(obj)
        if source == "streamhost-config":
            files = {k: rooted(c.decode()).encode() for k, c in files.items()}
        volumes[v["name"]] = Volume(root / mounts[v["name"]].lstrip("/"))
        volumes[v["name"]].write(files)
    plugins = volumes[next(v["name"] for v in pod["volumes"] if v.get("configMap", {}).get("name") == "streamhost-plugins")]

    env = {"PATH": os.environ["PATH"], **{v["name"]: rooted(v["value"]) for v in container["env"]},
           "STREAMHOST_KAFKA__BROKERS": BROKERS, "STREAMHOST_KAFKA_CLIENT_SECURITY_PROTOCOL": "PLAINTEXT"}
    config = tomllib.loads(object_files(one(docs, "ConfigMap", "streamhost-config"))["streamhost.toml"].decode())
    port = int(config["admin"]["listen"].rpartition(":")[2])
    if not port_free(port):
        port = free_port()
        env["STREAMHOST_ADMIN__LISTEN"] = f"127.0.0.1:{port}"
        print(f"admin.listen overridden: {config['admin']['listen']} is taken on this machine")
    admin = f"127.0.0.1:{port}"
    command = [str(HOST_BIN) if w == "streamhost" else w for w in container["command"] + container.get("args", [])]
    log_path = tmp_path / "host.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def ready():
            assert proc.poll() is None, f"the host exited:\n{log_path.read_text()[-3000:]}"
            return admin_answer(admin, container["readinessProbe"]["httpGet"]["path"])[0] == 200

        wait_until("/readyz 200", ready, timeout=60, interval=0.5)
        assert admin_answer(admin, container["livenessProbe"]["httpGet"]["path"])[0] == 200

        def chain() -> list[str]:
            return json.loads(admin_answer(admin, "/plugins")[1])["serving"]["chain"]

        served = chain()
        assert [c.split("@")[0] for c in served] == ["enrich", "quality"], served

        # A ConfigMap update: the kubelet's symlink swap, here without enrich.
        plugins.write({"20-quality.wasm": (PLUGINS_BUILT / "quality.wasm").read_bytes()})
        swapped = wait_until("the chain without enrich", lambda: (c := chain()) and [x.split("@")[0] for x in c] == ["quality"] and c,
                             timeout=30, interval=0.5)
        print(f"served {served}, then {swapped}")
        assert admin_answer(admin, "/readyz")[0] == 200

        password = object_files(one(docs, "Secret"))["sasl-password"].decode()
        assert password not in log_path.read_text(), "the password is in the log"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        print(f"--- host (exit {code}) ---\n{log_path.read_text()[-3000:]}")
    assert code == 0
