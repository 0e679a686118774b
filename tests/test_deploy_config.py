"""docker-compose.yml and the Helm chart cannot run here (no Docker engine, no
Kubernetes), so their drift is checked as text: every `TOLLGATE_<SERVICE>_*` variable
they set is a real setting of that service (a typo is otherwise silently ignored), and
the services that must agree on a secret are given the same one."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic_settings import BaseSettings

from tollgate.accounts.config import Settings as AccountsSettings
from tollgate.billing.config import Settings as BillingSettings
from tollgate.gateway.config import Settings as GatewaySettings
from tollgate.notifier.config import Settings as NotifierSettings
from tollgate.usage.config import Settings as UsageSettings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "accounts": AccountsSettings,
    "usage": UsageSettings,
    "billing": BillingSettings,
    "notifier": NotifierSettings,
}
SEALED_ACROSS = ("accounts", "gateway", "notifier")  # seal in accounts, open elsewhere
PEPPERED = ("accounts", "gateway")  # accounts hashes keys, the gateway checks them


def env_names(settings: type[BaseSettings]) -> set[str]:
    prefix = settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in settings.model_fields}


def test_compose_sets_only_real_settings_and_shares_the_secrets() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environments = {name: compose["services"][name]["environment"] for name in SETTINGS}
    for name, environment in environments.items():
        unknown = set(environment) - env_names(SETTINGS[name])
        assert not unknown, f"{name}: {sorted(unknown)}"
        assert environment[f"TOLLGATE_{name.upper()}_HOST"] == "0.0.0.0"

    def source(service: str, field: str) -> str:
        value: str = environments[service][f"TOLLGATE_{service.upper()}_{field}"]
        assert re.fullmatch(r"\$\{\w+:\?.+\}", value), f"{service} {field} must be required"
        return value

    assert len({source(s, "SEALING_KEYS") for s in SEALED_ACROSS}) == 1
    assert len({source(s, "KEY_PEPPER") for s in PEPPERED}) == 1
    accounts = environments["accounts"]
    key_file = accounts["TOLLGATE_ACCOUNTS_SIGNING_KEY_FILE"]
    mounts = [v.split(":")[1] for v in compose["services"]["accounts"]["volumes"]]
    assert any(key_file.startswith(mount + "/") for mount in mounts)


def test_helm_sets_only_real_settings_and_mounts_the_signing_keys() -> None:
    template = (ROOT / "infra/helm/tollgate/templates/services.yaml").read_text()
    values = yaml.safe_load((ROOT / "infra/helm/tollgate/values.yaml").read_text())
    assert set(values["services"]) == set(SETTINGS)
    # Every service gets the fixed names and the secret-backed ones; accounts adds its own.
    fixed = set(re.findall(r"name: \{\{ \$prefix \}\}([A-Z_]+)", template))
    listed = re.search(r"range \$key := list ((?:\"[A-Z_]+\" ?)+)", template)
    assert listed is not None
    from_secret = set(re.findall(r"\"([A-Z_]+)\"", listed.group(1)))
    accounts_only, database_only = {"SIGNING_KEY_FILE"}, {"DATABASE_URL"}
    assert accounts_only | database_only <= fixed
    for name, settings in SETTINGS.items():
        known = {n.removeprefix(f"TOLLGATE_{name.upper()}_") for n in env_names(settings)}
        required = fixed - accounts_only - database_only
        if name == "accounts":
            required |= accounts_only
        if values["services"][name]["database"]:
            required |= database_only
        assert not required - known, f"{name}: {sorted(required - known)}"
        shared_secrets = {"SEALING_KEYS", "KEY_PEPPER"}
        assert shared_secrets <= from_secret & known
    everywhere = set().union(*(env_names(s) for s in SETTINGS.values()))
    for secret in from_secret:
        assert any(n.endswith("_" + secret) for n in everywhere), f"nobody reads {secret}"
    assert "ACCOUNTS_SIGNING_KEYS_PEM" in template
    assert "mountPath: /keys" in template
