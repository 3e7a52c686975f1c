"""The deployment files in deploy/: they parse, match their schemas, and agree with the code and
with each other (flags the CLI has, the labels the NetworkPolicies select, ports, names, tokens).

All offline: the Kubernetes schemas come from kubernetes-validate, the compose spec from
check-jsonschema, the CLI flags from the project's own parser. What needs a cluster, Docker or a
gateway is not checked here; docs/deploy.md says what was run for real and what was not.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from python_mcp_server.auth_token import MIN_PUBLIC_TOKEN_CHARS, TOKEN_ENV
from python_mcp_server.cli import app
from python_mcp_server.cli_options import env_var
from python_mcp_server.middleware.auth import OPEN_PATHS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
EG = K8S / "enterprise-gateway"
KERNELSPEC = EG / "kernelspecs" / "python_mcp"
COMPOSE = DEPLOY / "compose"

# the oldest Kubernetes the manifests claim (NetworkPolicy endPort, Pod Security labels) and the
# newest whose schemas kubernetes-validate bundles
K8S_VERSIONS = ("1.25", kubernetes_validate.utils.latest_version())

GATEWAY_TOKEN_ENV = "PYTHON_MCP_SERVER_KERNEL_GATEWAY_TOKEN"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_one(path: Path) -> dict[str, Any]:
    (doc,) = load_all(path)
    return doc


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def kustomized() -> list[dict[str, Any]]:
    """The resources deploy/kubernetes/kustomization.yaml lists, as written (it transforms none
    but the image tag)."""
    kustomization = load_one(K8S / "kustomization.yaml")
    return [doc for name in kustomization["resources"] for doc in load_all(K8S / name)]


def values() -> dict[str, Any]:
    return load_one(K8S / "enterprise-gateway-values.yaml")


def render_kernel_pod(keywords: dict[str, Any]) -> dict[str, Any]:
    """kernel-pod.yaml.j2 rendered as EG's launch_kubernetes.py renders it, for a template that
    uses only `{{ name | yaml_safe }}` (checked): yaml_safe is a YAML-quoted scalar."""
    template = (KERNELSPEC / "scripts" / "kernel-pod.yaml.j2").read_text()
    pattern = re.compile(r"\{\{ (\w+) \| yaml_safe \}\}")
    bare = pattern.sub("", template)
    assert not re.search(r"\{\{|\{%", bare), "the template may use only {{ name | yaml_safe }}"

    def substitute(match: re.Match[str]) -> str:
        return json.dumps(str(keywords[match.group(1)]))  # a JSON string is a quoted YAML scalar

    return dict(yaml.safe_load(pattern.sub(substitute, template)))


def test_every_yaml_file_in_deploy_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 10
    for path in files:
        assert load_all(path), f"{path} holds no document"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_kubernetes_schema(version: str) -> None:
    kustomization = load_one(K8S / "kustomization.yaml")
    not_manifests = {"kustomization.yaml", "enterprise-gateway-values.yaml"}
    on_disk = {p.name for p in K8S.glob("*.yaml")} - not_manifests
    # every manifest is applied by the kustomization or is one of the hand-applied examples
    assert on_disk == {*kustomization["resources"], "secret.example.yaml", "ingress.example.yaml"}
    for name in sorted(on_disk):
        for doc in load_all(K8S / name):
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}")


def test_the_kernel_pod_is_a_valid_pod_whatever_the_client_sends() -> None:
    # EG passes every KERNEL_* variable a client sends into these keywords
    hostile = {
        "kernel_pod_name": "alice-0d1e",
        "kernel_id": "0d1e",
        "kernel_namespace": "kube-system",
        "kernel_image": "attacker/image:latest",
        "kernel_service_account_name": "cluster-admin",
        "kernel_uid": "0",
        "kernel_volumes": [{"name": "host", "hostPath": {"path": "/"}}],
    }
    pod = render_kernel_pod(hostile)
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    spec = pod["spec"]
    (container,) = spec["containers"]
    spec_json = json.loads((KERNELSPEC / "kernel.json").read_text())
    assert pod["metadata"]["namespace"] == spec_json["env"]["KERNEL_NAMESPACE"] == "mcp-kernels"
    assert spec["serviceAccountName"] == spec_json["env"]["KERNEL_SERVICE_ACCOUNT_NAME"]
    assert container["image"] == spec_json["metadata"]["process_proxy"]["config"]["image_name"]
    assert "volumes" not in spec
    assert "volumeMounts" not in container
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # EG finds its pod by these labels
    assert pod["metadata"]["labels"]["kernel_id"] == "0d1e"
    assert pod["metadata"]["labels"]["component"] == "kernel"


def test_the_kernel_namespace_and_its_service_account_exist() -> None:
    docs = kustomized()
    namespace = find(docs, "Namespace", "mcp-kernels")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    account = find(docs, "ServiceAccount", "mcp-kernel")
    assert account["metadata"]["namespace"] == "mcp-kernels"
    assert account["automountServiceAccountToken"] is False
    assert values()["kernel"]["defaultServiceAccountName"] == "mcp-kernel"


def test_kernel_network_policies_select_the_kernel_pods_and_open_only_eg() -> None:
    docs = kustomized()
    deny = find(docs, "NetworkPolicy", "default-deny-all")
    assert deny["metadata"]["namespace"] == "mcp-kernels"
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    allow = find(docs, "NetworkPolicy", "kernels-talk-to-enterprise-gateway-only")
    kernel_labels = render_kernel_pod({"kernel_pod_name": "p", "kernel_id": "k"})["metadata"][
        "labels"
    ]
    selected = allow["spec"]["podSelector"]["matchLabels"]
    assert selected.items() <= kernel_labels.items()

    (ingress,) = allow["spec"]["ingress"]
    (egress,) = allow["spec"]["egress"]
    low, high = values()["deployment"]["extraEnv"]["EG_PORT_RANGE"].split("..")
    (port_range,) = ingress["ports"]
    assert (port_range["port"], port_range["endPort"]) == (int(low), int(high))
    response_port = {p["name"]: p["port"] for p in values()["service"]["ports"]}["http-response"]
    assert egress["ports"] == [{"protocol": "TCP", "port": response_port}]
    for rule in ({**ingress, "peers": ingress["from"]}, {**egress, "peers": egress["to"]}):
        (peer,) = rule["peers"]
        assert peer["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "enterprise-gateway"
        }
        assert peer["podSelector"]["matchLabels"] == {
            "app": "enterprise-gateway",
            "component": "enterprise-gateway",
        }


def test_only_the_mcp_server_reaches_the_gateway_api() -> None:
    docs = kustomized()
    policy = find(docs, "NetworkPolicy", "enterprise-gateway-ingress")
    deployment = find(docs, "Deployment", "python-mcp-server")
    server_labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["port"] for p in values()["service"]["ports"]}
    api_rule, response_rule = policy["spec"]["ingress"]

    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (peer,) = api_rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": deployment["metadata"]["namespace"]
    }
    assert peer["podSelector"]["matchLabels"].items() <= server_labels.items()
    assert api_rule["ports"] == [{"protocol": "TCP", "port": ports["http"]}]

    (peer,) = response_rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "mcp-kernels"
    }
    kernel_labels = render_kernel_pod({"kernel_pod_name": "p", "kernel_id": "k"})["metadata"][
        "labels"
    ]
    assert peer["podSelector"]["matchLabels"].items() <= kernel_labels.items()
    assert response_rule["ports"] == [{"protocol": "TCP", "port": ports["http-response"]}]


def cli_accepts(args: list[str]) -> dict[str, Any]:
    """The configuration the project's own CLI makes of `args`; fails on a flag it does not
    have (so a renamed flag breaks the manifests' tests)."""
    result = CliRunner().invoke(app, [*args, "--show-config"], env={TOKEN_ENV: None})
    assert result.exit_code == 0, f"{args}: {result.output}"
    return dict(json.loads(result.stdout))


def test_the_deployment_runs_the_server_with_flags_it_has() -> None:
    deployment = find(kustomized(), "Deployment", "python-mcp-server")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert all(a.startswith("--") and "=" in a for a in args), "one --flag=value per item"
    config = cli_accepts(args)
    assert (config["transport"], config["host"]) == ("http", "0.0.0.0")
    assert str(config["kernel_gateway_url"]).startswith("http://enterprise-gateway.")

    # the tokens come from the Secret, in the variables the server reads
    env = {e["name"]: e for e in container["env"]}
    assert env_var("--auth-token") == TOKEN_ENV in env
    assert GATEWAY_TOKEN_ENV in env
    for name in (TOKEN_ENV, GATEWAY_TOKEN_ENV):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]

    (port,) = container["ports"]
    assert port["containerPort"] == config["port"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in OPEN_PATHS  # answers without the token
        assert container[probe]["httpGet"]["port"] == port["name"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert Path(config["workspace_dir"]).is_relative_to("/var/lib/python-mcp-server")
    assert "/var/lib/python-mcp-server" in mounts

    service = find(kustomized(), "Service", "python-mcp-server")
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]

    ingress = load_one(K8S / "ingress.example.yaml")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == config["path"]
    assert path["backend"]["service"] == {
        "name": service["metadata"]["name"],
        "port": {"name": service["spec"]["ports"][0]["name"]},
    }


def test_the_example_secrets_hold_no_usable_token() -> None:
    docs = load_all(K8S / "secret.example.yaml")
    deployment = find(kustomized(), "Deployment", "python-mcp-server")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    wanted = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container["env"]
        if "valueFrom" in e
    }
    patch = load_one(EG / "post-render" / "enterprise-gateway-patch.yaml")
    (eg_container,) = patch["spec"]["template"]["spec"]["containers"]
    (eg_token,) = [e for e in eg_container["env"] if e["name"] == "EG_AUTH_TOKEN"]
    wanted.add(
        (
            eg_token["valueFrom"]["secretKeyRef"]["name"],
            eg_token["valueFrom"]["secretKeyRef"]["key"],
        )
    )
    present = set()
    for secret in docs:
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            present.add((secret["metadata"]["name"], key))
            # a placeholder the server refuses to serve with, never a token
            assert "CHANGE-ME" in value
            assert len(value) < MIN_PUBLIC_TOKEN_CHARS
    assert present == wanted


def test_the_gateway_values_agree_with_the_kernelspec() -> None:
    v = values()
    spec_dir = KERNELSPEC.name
    spec = json.loads((KERNELSPEC / "kernel.json").read_text())
    assert v["kernel"]["allowedKernels"] == [spec_dir]
    assert v["kernel"]["defaultKernelName"] == spec_dir
    assert (
        spec["argv"][1]
        == f"/usr/local/share/jupyter/kernels/{spec_dir}/scripts/launch_kubernetes.py"
    )
    image = spec["metadata"]["process_proxy"]["config"]["image_name"]
    assert image in v["kip"]["images"].split(",")
    assert v["image"] == "elyra/enterprise-gateway:3.3.0"
    assert v["authToken"] is None, "the token comes from the Secret, never from values"
    assert v["ingress"]["enabled"] is False
    assert v["service"]["type"] == "ClusterIP"
    assert "EG_AUTH_TOKEN" not in v["deployment"]["extraEnv"]["EG_INHERITED_ENVS"]
    dockerfile = (EG / "kernelspecs" / "Dockerfile").read_text()
    for name in ("kernel.json", "scripts/kernel-pod.yaml.j2"):
        assert f"COPY {spec_dir}/{name} /kernels/{spec_dir}/{name}" in dockerfile


def test_the_post_renderer_wires_the_token_and_the_nodelay_config() -> None:
    post_render = EG / "post-render"
    kustomization = load_one(post_render / "kustomization.yaml")
    (generator,) = kustomization["configMapGenerator"]
    assert generator["files"] == ["jupyter_enterprise_gateway_config.py=nodelay_config.py"]
    script = (post_render / "post-render.sh").read_text()
    assert '"$here/../../../gateway/nodelay_config.py"' in script
    assert (post_render / "../../../gateway/nodelay_config.py").resolve() == (
        DEPLOY / "gateway" / "nodelay_config.py"
    )
    assert (post_render / "post-render.sh").stat().st_mode & 0o111, "helm runs it: executable"

    patch = load_one(post_render / "enterprise-gateway-patch.yaml")
    pod = patch["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "enterprise-gateway"  # the chart's container
    env = {e["name"]: e for e in container["env"]}
    (mount,) = container["volumeMounts"]
    assert env["JUPYTER_CONFIG_PATH"]["value"] == mount["mountPath"]
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"]
    assert volume["configMap"]["name"] == generator["name"]

    plugin = load_one(post_render / "plugin.yaml")
    assert plugin["type"] == "postrenderer/v1"
    assert plugin["runtimeConfig"]["platformCommand"] == [
        {"command": "${HELM_PLUGIN_DIR}/post-render.sh"}
    ]
    assert f"--post-renderer {plugin['name']}" in script


@pytest.mark.parametrize(
    "compose_file", [COMPOSE / "compose.yaml", ROOT / "compose.yaml"], ids=["gateway", "root"]
)
def test_the_compose_file_matches_the_compose_spec(compose_file: Path) -> None:
    check = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(compose_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_server_against_kernel_gateway() -> None:
    compose = load_one(COMPOSE / "compose.yaml")
    services = compose["services"]
    assert set(services) == {"server", "kernel-gateway"}
    server, gateway = services["server"], services["kernel-gateway"]

    config = cli_accepts(server["command"])
    (url,) = [a for a in server["command"] if a.startswith("--kernel-gateway-url=")]
    dockerfile = (COMPOSE / "kernel-gateway.Dockerfile").read_text()
    kg_port = re.search(r"KG_PORT=(\d+)", dockerfile)
    assert kg_port is not None
    assert url == f"--kernel-gateway-url=http://kernel-gateway:{kg_port.group(1)}"
    assert server["ports"] == [f"127.0.0.1:{config['port']}:{config['port']}"]
    assert "ports" not in gateway, "only the server reaches the gateway"
    assert server["depends_on"]["kernel-gateway"]["condition"] == "service_healthy"
    assert "/health" in server["healthcheck"]["test"][-1]
    # tokens: required variables from .env, never literals
    for env, name in (
        (server["environment"], TOKEN_ENV),
        (server["environment"], GATEWAY_TOKEN_ENV),
        (gateway["environment"], "KG_AUTH_TOKEN"),
    ):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[name]), f"{name}: {env[name]}"
    assert "--config=/etc/kernel-gateway/nodelay_config.py" in dockerfile
    assert (
        "COPY deploy/gateway/nodelay_config.py /etc/kernel-gateway/nodelay_config.py" in dockerfile
    )


@pytest.mark.parametrize("name", ["server.Dockerfile", "kernel-gateway.Dockerfile"])
def test_dockerfiles_copy_files_that_exist_and_are_sent(name: str) -> None:
    """Built from the repository root with the ignore file beside the Dockerfile."""
    allowed = [
        line[1:].rstrip("/")
        for line in (COMPOSE / f"{name}.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", (COMPOSE / name).read_text(), re.MULTILINE)
    assert copies
    for sources in copies:
        for source in sources.split():
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(f"{a}/") for a in allowed), source


def test_the_nodelay_config_loads_as_a_jupyter_config_file(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without jupyter_server (this environment has none) the file still loads: the gateway
    starts and a warning names the file. The real effect is checked against Kernel Gateway 3 and
    Enterprise Gateway 3.3 by deploy/gateway/check_nodelay.py (docs/deploy.md)."""
    from traitlets.config.loader import PyFileConfigLoader

    assert importlib.util.find_spec("jupyter_server") is None, "the project does not use it"
    config_file = DEPLOY / "gateway" / "nodelay_config.py"
    loader = PyFileConfigLoader(config_file.name, path=str(config_file.parent))
    with caplog.at_level("WARNING"):
        config = loader.load_config()
    assert "KernelGatewayApp" not in config
    assert "nodelay_config.py: found no kernel websocket handler" in caplog.text
