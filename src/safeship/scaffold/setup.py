"""What `safeship init` was told: router, provider, environments, and what monitoring exists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from safeship.errors import ConfigError

Router = Literal["local", "nginx", "haproxy", "kubernetes"]
Provider = Literal["scrape", "prometheus"]
ROUTERS: tuple[Router, ...] = ("local", "nginx", "haproxy", "kubernetes")
PROVIDERS: tuple[Provider, ...] = ("scrape", "prometheus")
DEFAULT_ENVIRONMENTS = ("staging", "production")
DEFAULT_SLOT_ADDRESSES = ("127.0.0.1:9001", "127.0.0.1:9002")

# As config.py requires of a service; environments also name alerts and files.
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENVIRONMENT = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9.-]+:([0-9]{1,5})$")
# Kubernetes names the service's HTTPRoute and its <service>-blue/-green Services:
# DNS labels (RFC 1123) of at most 63 characters, so the service at most 57.
_KUBERNETES_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,55}[a-z0-9])?$")


@dataclass(frozen=True)
class Setup:
    """The choices; `validate` says what cannot work together before anything is written."""

    service: str
    router: Router = "local"
    provider: Provider = "scrape"
    environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
    prometheus: bool = True  # alerting rules, Alertmanager, the Pushgateway
    grafana: bool = True
    slot_addresses: tuple[str, str] = DEFAULT_SLOT_ADDRESSES

    def validate(self) -> None:
        problems = []
        if not _SERVICE.match(self.service):
            problems.append(
                f"--service {self.service!r}: use letters, digits, '.', '_' and '-', starting "
                "with a letter or digit"
            )
        if not self.environments:
            problems.append("--env: name at least one environment")
        for env in self.environments:
            if not _ENVIRONMENT.match(env):
                problems.append(
                    f"--env {env!r}: use letters, digits, '_' and '-', starting with a "
                    "letter (at most 63 characters)"
                )
        if len(set(self.environments)) != len(self.environments):
            problems.append("--env: an environment is named twice")
        for address in self.slot_addresses:
            match = _ADDRESS.match(address)
            if not match or not 1 <= int(match.group(1)) <= 65535:
                problems.append(f"--slot-addresses {address!r}: expected HOST:PORT (1-65535)")
        if self.slot_addresses[0] == self.slot_addresses[1]:
            problems.append("--slot-addresses: the two slots need two addresses")
        if self.router == "kubernetes" and not _KUBERNETES_NAME.match(self.service):
            problems.append(
                f"--service {self.service!r}: Kubernetes names its HTTPRoute and Services after "
                "it: lower-case letters, digits and '-', at most 57 characters"
            )
        if self.router == "kubernetes" and self.provider == "scrape":
            problems.append(
                "--provider scrape reads each slot's address, which Kubernetes slots "
                "(Services or Deployments) do not have: use --provider prometheus"
            )
        if self.provider == "prometheus" and not self.prometheus:
            problems.append("--provider prometheus needs a Prometheus: leave out --no-prometheus")
        if problems:
            raise ConfigError(problems[0], problems)

    @property
    def kubernetes(self) -> bool:
        return self.router == "kubernetes"

    @property
    def runs_processes(self) -> bool:
        """The slots are addresses a hook starts a process on (not Kubernetes objects)."""
        return self.router != "kubernetes"
