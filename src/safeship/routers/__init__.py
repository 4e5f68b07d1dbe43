"""Where traffic goes: a router sets and confirms the canary's share of traffic."""

from typing import assert_never

from safeship.config import (
    HaproxyRouterSettings,
    KubernetesRouterSettings,
    LocalRouterSettings,
    NginxRouterSettings,
    RouterSettings,
)
from safeship.routers.interface import Router


def build_router(settings: RouterSettings) -> Router:
    """The router backend a config names; every backend type is handled here."""
    if isinstance(settings, LocalRouterSettings):
        from safeship.routers.local import LocalRouter

        token = settings.admin_token.reveal() if settings.admin_token else None
        return LocalRouter(
            settings.admin_url, timeout=settings.timeout, slots=settings.slots, admin_token=token
        )
    if isinstance(settings, HaproxyRouterSettings):
        from safeship.routers.haproxy import HaproxyRouter

        return HaproxyRouter.from_settings(settings)
    if isinstance(settings, NginxRouterSettings):
        from safeship.routers.nginx import NginxRouter

        return NginxRouter.from_settings(settings)
    if isinstance(settings, KubernetesRouterSettings):
        from safeship.routers.kubernetes import KubernetesRouter

        return KubernetesRouter.from_settings(settings)
    assert_never(settings)
