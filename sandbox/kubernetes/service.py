"""The Kubernetes API as a sandbox service: store, controllers, seeded objects, tokens and a kubeconfig."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

import yaml

from sandbox.kubernetes.api import KubernetesState, create_app
from sandbox.kubernetes.controller import Controller
from sandbox.kubernetes.rbac import Authenticator
from sandbox.kubernetes.seed import kubeconfig, seed
from sandbox.kubernetes.store import Store
from sandbox.kubernetes.tls import make_serving_certificate
from tradeops.config import TradeOpsConfig


class KubernetesSandbox:
    def __init__(self, config: TradeOpsConfig, state_dir: Path, host: str, port: int, anonymous_admin: bool = False):
        started = time.monotonic()
        self.url = url = f"https://{host}:{port}"
        self.tls = make_serving_certificate(state_dir, [host, "127.0.0.1", "localhost"])
        self.uvicorn_options = {"ssl_certfile": str(self.tls["cert"]), "ssl_keyfile": str(self.tls["key"])}
        self.store = Store()
        identities = seed(self.store, config)
        self.tokens = {identity: f"sandbox-{identity}-{secrets.token_urlsafe(18)}" for identity in identities}
        authenticator = Authenticator({self.tokens[i]: user for i, user in identities.items()}, anonymous_admin)
        self.controller = Controller(
            self.store,
            ready_seconds=lambda: self.state.faults.faults.pod_ready_seconds,
            unpullable=lambda image: image in self.state.faults.faults.unpullable_images,
            paused=lambda: self.state.faults.faults.controller_paused,
        )
        self.state = KubernetesState(self.store, authenticator, url.split("//", 1)[1])
        self.app = create_app(self.state)
        self.controller.settle()
        self.kubeconfig_path = state_dir / "kubeconfig"
        self.kubeconfig = kubeconfig(
            url, self.tokens, config.kubernetes.namespaces[0].name, self.tls["ca"].read_bytes()
        )
        self.kubeconfig_path.write_text(yaml.safe_dump(self.kubeconfig, sort_keys=False))
        self.kubeconfig_path.chmod(0o600)
        self.ready_s = round(time.monotonic() - started, 2)

    async def run(self, stop: asyncio.Event) -> None:
        await self.controller.run(stop)

    def settings(self) -> dict:
        return {
            "url": self.url,
            "kubeconfig": str(self.kubeconfig_path),
            "ca_file": str(self.tls["ca"]),
            "tokens": self.tokens,
            "kubeconfig_json": json.dumps(self.kubeconfig),
            "ready_s": self.ready_s,
        }
