"""The `kubernetes` router: Gateway API, Istio, SMI or replica counts (see `router`)."""

from safeship.routers.kubernetes.router import RBAC_VERBS, STABLE_SLOT, KubernetesRouter

__all__ = ["RBAC_VERBS", "STABLE_SLOT", "KubernetesRouter"]
