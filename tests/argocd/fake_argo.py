"""A Kubernetes-style API (kmock) with ArgoCD Applications, and a small scripted ArgoCD controller.

kmock serves an in-memory API on 127.0.0.1; the code under test talks to it with the official
`kubernetes` client over real HTTP. kmock runs on its own event loop in a background thread, so
tests call the synchronous tasks directly.

On top of kmock's emulator this adds what the sync path depends on:
* resourceVersion bookkeeping: every write bumps it, and a merge patch carrying
  `metadata.resourceVersion` is a precondition (409 Conflict when stale), as on a real API server;
* `interlopers`: the next N preconditioned patches find the object changed by someone else first;
* every patch body from the code under test is recorded exactly as sent, before the emulator
  touches it (the controller's own patches are left out).

`Controller` watches the stored Application the way ArgoCD does: it answers refresh annotations
(removes the annotation, moves status.reconciledAt forward) and plays a script of status patches
when `.operation` appears.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attrs
import kmock

APPS = kmock.resource("argoproj.io", "v1alpha1", "applications")
NAMESPACE = "argocd"
CONTEXT = "minikube-indri"
TOKEN = "kmock-test-bearer-token"


def stamp(n: int) -> str:
    """Increasing RFC 3339 timestamps (string order = time order)."""
    return f"2026-11-26T05:{n // 60:02d}:{n % 60:02d}Z"


@attrs.define(kw_only=True)
class ArgoEmulator(kmock.KubernetesEmulator):
    interlopers: int = 0
    patches: list[tuple[str, Any]] = attrs.field(factory=list)
    _rv: Any = attrs.field(factory=lambda: itertools.count(1000))

    def next_rv(self) -> str:
        return str(next(self._rv))

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource == APPS and request.action == kmock.action.UPDATE and request.name:
            if not str(request.headers.get("User-Agent", "")).startswith("kmock/"):  # not the controller's
                self.patches.append((request.name, copy.deepcopy(request.data)))
            key = (APPS, request.namespace, request.name)
            data = request.data if isinstance(request.data, dict) else {}
            wanted = (data.get("metadata") or {}).get("resourceVersion")
            async with self._lock:
                if key in self._objects and not self._objects[key].deleted:
                    obj = self._objects[key]
                    if wanted is not None and self.interlopers > 0:
                        self.interlopers -= 1
                        obj.patch({"metadata": {"resourceVersion": self.next_rv()}})
                        await self._buses[APPS].put({"type": "MODIFIED", "object": obj.raw})
                    stored = (obj.raw.get("metadata") or {}).get("resourceVersion")
                    if wanted is not None and wanted != stored:
                        raise kmock.KubernetesError(
                            status=409,
                            reason="Conflict",
                            message=f'Operation cannot be fulfilled on applications.argoproj.io "{request.name}": '
                            "the object has been modified; please apply your changes to the latest version "
                            "and try again",
                            details={"name": request.name},
                        )
                    data.setdefault("metadata", {})["resourceVersion"] = self.next_rv()
        return await super()._handle(request)


REPO_URL = "https://forge.ops.eblu.me/eblume/blumeops.git"


def application(name: str, *, source: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    """A live Application as ArgoCD stores it, its source as git has it (argocd/manifests/<name>
    on the configured repo's main) unless `source` says otherwise: Synced and Healthy unless
    `status` says otherwise."""
    base_status: dict[str, Any] = {
        "sync": {"status": "Synced", "revision": "0" * 40},
        "health": {"status": "Healthy"},
        "reconciledAt": stamp(0),
        "resources": [],
    }
    base_status.update(status)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": "1"},
        "spec": {
            "project": "default",
            "source": source
            or {
                "repoURL": REPO_URL,
                "path": "argocd/apps" if name == "blumeops" else f"argocd/manifests/{name}",
                "targetRevision": "main",
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
        },
        "status": base_status,
    }


@dataclass
class Script:
    """What the controller does. `on_refresh`: status merged in when it answers a refresh.
    `on_operation`: status patches played in order once `.operation` appears (each may clear it)."""

    on_refresh: dict[str, Any] = field(default_factory=dict)
    on_operation: Sequence[dict[str, Any]] = ()
    answer_refresh: bool = True
    # False: the refresh completes within the same second, so reconciledAt (whole seconds) stays put.
    move_reconciled: bool = True


class FakeArgo:
    """kmock + controller on a background event loop; every method is called from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.scripts: dict[str, Script] = {}
        self._clock = itertools.count(10)
        self.seen_operations: list[tuple[str, Any]] = []
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("kmock did not start")
        if self._error:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to the test thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with ArgoEmulator() as km, kmock.Server(km) as server:
            self.km = km
            self.url = str(server.url).rstrip("/")
            km.resources["argoproj.io/v1alpha1/applications"] = {}
            controller = asyncio.create_task(self._controller())
            self._ready.set()
            await self._stop.wait()
            controller.cancel()

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrapped() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(10)

    # --- state -------------------------------------------------------------------------------

    def put(self, obj: Mapping[str, Any]) -> None:
        name = obj["metadata"]["name"]

        def store() -> None:
            self.km.objects[APPS, NAMESPACE, name] = copy.deepcopy(dict(obj))

        self.call(store)

    def get(self, name: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            key = (APPS, NAMESPACE, name)
            if key not in self.km.objects or self.km.objects[key].deleted:
                return None
            return copy.deepcopy(self.km.objects[key].raw)

        result: dict[str, Any] | None = self.call(read)
        return result

    def patches(self, name: str) -> list[Any]:
        return [body for n, body in self.call(lambda: list(self.km.patches)) if n == name]

    def requests(self) -> list[tuple[str, str]]:
        return [(r.method.value, r.url.path) for r in self.call(lambda: list(self.km))]

    def client_requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, query without timeoutSeconds) of every request the code under test made."""
        return [
            (r.method.value, r.url.path, {k: v for k, v in r.url.query.items() if k != "timeoutSeconds"})
            for r in self.call(lambda: list(self.km))
            if not str(r.headers.get("User-Agent", "")).startswith("kmock/")
        ]

    def respond(self, method: str, status: int, message: str = "", *, everything: bool = False) -> None:
        """Every `method` request on applications (or on any path) answers `status` with a Status body."""
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status, "message": message}

        def add() -> None:
            view = self.km[method.lower()] if everything else self.km[method.lower(), APPS]
            view << status << body

        self.call(add)

    def set_interlopers(self, count: int) -> None:
        def setter() -> None:
            self.km.interlopers = count

        self.call(setter)

    def kubeconfig(self, path: Path, context: str = CONTEXT, server: str | None = None) -> Path:
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: kmock\n  cluster:\n    server: {server or self.url}\n"
            f"users:\n- name: tester\n  user:\n    token: {TOKEN}\n"
            f"contexts:\n- name: {context}\n  context:\n    cluster: kmock\n    user: tester\n"
            f"current-context: {context}\n",
            encoding="utf-8",
        )
        return path

    # --- the scripted controller (runs on the kmock loop) --------------------------------------

    async def _patch(self, name: str, body: Mapping[str, Any]) -> None:
        path = f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/applications/{name}"
        async with self.km.patch(path, json=body, headers={"Content-Type": "application/merge-patch+json"}) as response:
            response.raise_for_status()

    def _now(self) -> str:
        return stamp(next(self._clock))

    async def _controller(self) -> None:
        active: set[str] = set()  # apps whose current operation has been (or is being) played
        while True:
            await asyncio.sleep(0.01)
            for (_res, _ns, name), obj in list(self.km.objects.items()):
                if obj.deleted:
                    continue
                raw = obj.raw
                script = self.scripts.get(name, Script())
                annotations = (raw.get("metadata") or {}).get("annotations") or {}
                if "argocd.argoproj.io/refresh" in annotations and script.answer_refresh:
                    status = copy.deepcopy(script.on_refresh)
                    if script.move_reconciled:
                        status["reconciledAt"] = self._now()
                    await self._patch(
                        name,
                        {"metadata": {"annotations": {"argocd.argoproj.io/refresh": None}}, "status": status},
                    )
                operation = raw.get("operation")
                if not operation:
                    active.discard(name)
                elif name not in active:
                    active.add(name)
                    self.seen_operations.append((name, copy.deepcopy(operation)))
                    for step in script.on_operation:
                        await asyncio.sleep(0.05)
                        await self._patch(name, self._fill(step))

    def _fill(self, step: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the placeholder "NOW" anywhere in a step with the next timestamp."""

        def walk(node: Any) -> Any:
            if node == "NOW":
                return self._now()
            if isinstance(node, Mapping):
                return {k: walk(v) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v) for v in node]
            return node

        result: dict[str, Any] = walk(step)
        return result
