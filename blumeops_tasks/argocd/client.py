"""The Kubernetes API, through the official `kubernetes` client (imported inside, never at module top).

`ArgoApi` wraps `CustomObjectsApi` for `argoproj.io/v1alpha1` applications in one namespace.
Every failure surfaces as `ArgoApiError` carrying one actionable sentence: HTTP 401/403/404/409/5xx,
an unreachable server, a missing kubeconfig or context.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GROUP = "argoproj.io"
VERSION = "v1alpha1"
PLURAL = "applications"


class ArgoApiError(Exception):
    """One sentence for the operator; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Target:
    """Where the API is: kubeconfig file(s), context, ArgoCD namespace, and per-request timeout."""

    kubeconfig: str
    context: str
    namespace: str
    timeout: float

    def describe(self) -> str:
        return f"context {self.context!r}"


def kubeconfig_path(configured: str) -> str:
    """The configured kubeconfig, else $KUBECONFIG (may list several files), else ~/.kube/config."""
    if configured:
        return str(Path(configured).expanduser())
    env = os.environ.get("KUBECONFIG", "")
    return env if env else str(Path("~/.kube/config").expanduser())


def kubeconfig_files(value: str) -> list[Path]:
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def contexts(kubeconfig: str) -> list[str]:
    """Context names in the kubeconfig; raises ArgoApiError when it cannot be read."""
    from kubernetes import config as kube_config
    from kubernetes.config import ConfigException

    loader: Any = kube_config
    try:
        listed, _active = loader.list_kube_config_contexts(config_file=kubeconfig)
    except (ConfigException, OSError, ValueError) as exc:
        raise ArgoApiError(f"The kubeconfig {kubeconfig} cannot be read: {_first_line(exc)}.") from None
    return [str(c.get("name")) for c in listed or []]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _status_message(body: str | None) -> str:
    if not body:
        return ""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return str(data.get("message") or "") if isinstance(data, Mapping) else ""


def explain(exc: BaseException, target: Target, what: str) -> ArgoApiError:  # noqa: PLR0911
    """Turn a client exception into one sentence (what is wrong, how to fix it)."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError as Urllib3Error

    where = target.describe()
    if isinstance(exc, ArgoApiError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        detail = _status_message(exc.body)
        suffix = f" ({detail})" if detail else ""
        if status == 401:
            return ArgoApiError(
                f"The API server rejected the credentials of {where} while trying to {what} (401 Unauthorized): "
                f"they are missing or expired; log in again and refresh the kubeconfig.",
                status,
            )
        if status == 403:
            return ArgoApiError(
                f"The credentials of {where} are not allowed to {what} (403 Forbidden){suffix}; "
                f"use an identity with access to Applications in namespace {target.namespace!r}.",
                status,
            )
        if status == 404:
            return ArgoApiError(f"Not found while trying to {what} (404){suffix}.", status)
        if status == 409:
            return ArgoApiError(
                f"Conflict while trying to {what} (409): the Application changed since it was read{suffix}; "
                f"re-run to read the new state.",
                status,
            )
        if status >= 500:
            return ArgoApiError(
                f"The API server failed while trying to {what} ({status} {exc.reason or ''}".rstrip()
                + f"){suffix}; check the control plane and retry.",
                status,
            )
        return ArgoApiError(f"The API server answered {status} {exc.reason or ''} to {what}{suffix}.", status)
    if isinstance(exc, ConfigException):
        return ArgoApiError(f"The kubeconfig cannot be used with {where}: {_first_line(exc)}.")
    if isinstance(exc, Urllib3Error | OSError):
        return ArgoApiError(
            f"The API server of {where} is unreachable while trying to {what} "
            f"({type(exc).__name__}); check the network, VPN or tailnet and the context's server URL."
        )
    return ArgoApiError(f"Unexpected {type(exc).__name__} while trying to {what}: {_first_line(exc)}.")


def _is_timeout(exc: BaseException) -> bool:
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return True
    # A read timeout in the middle of a chunked watch surfaces as a ProtocolError wrapping it.
    return isinstance(exc, ProtocolError) and any(
        isinstance(arg, ReadTimeoutError | TimeoutError) or "timed out" in str(arg) for arg in exc.args
    )


class ArgoApi:
    """Applications in the ArgoCD namespace, through the Kubernetes API."""

    def __init__(self, target: Target) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config

        config: Any = kube_config
        self.target = target
        files = kubeconfig_files(target.kubeconfig)
        if not any(f.is_file() for f in files):
            raise ArgoApiError(f"No kubeconfig at {target.kubeconfig}; set KUBECONFIG or blumeops.argocd.kubeconfig.")
        try:
            self._api_client = config.new_client_from_config(
                config_file=target.kubeconfig, context=target.context, persist_config=False
            )
        except Exception as exc:
            raise explain(exc, target, f"load context {target.context!r}") from None
        self._objects = client.CustomObjectsApi(self._api_client)

    def close(self) -> None:
        self._api_client.close()

    def __enter__(self) -> ArgoApi:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def server(self) -> str:
        return str(self._api_client.configuration.host)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=self.target.timeout, **kwargs)
        except Exception as exc:
            raise explain(exc, self.target, what) from None

    def resource_names(self) -> list[str]:
        """Resources served under argoproj.io/v1alpha1 (discovery); 404 means the CRDs are absent."""
        import json

        # Raw JSON: discovery documents vary between servers more than the typed model tolerates.
        response = self._call(
            "discover argoproj.io/v1alpha1",
            self._objects.get_api_resources,
            GROUP,
            VERSION,
            _preload_content=False,
        )
        try:
            document = json.loads(response.data or b"{}")
        except ValueError:
            raise ArgoApiError("The API server sent an unreadable discovery document for argoproj.io.") from None
        return [str(r.get("name")) for r in document.get("resources") or [] if isinstance(r, Mapping)]

    def get(self, name: str) -> dict[str, Any] | None:
        """The live Application, or None when it does not exist."""
        try:
            found: Any = self._objects.get_namespaced_custom_object(
                GROUP, VERSION, self.target.namespace, PLURAL, name, _request_timeout=self.target.timeout
            )
            return dict(found)
        except Exception as exc:
            err = explain(exc, self.target, f"read Application {name!r}")
            if err.status == 404:
                return None
            raise err from None

    def list(self) -> list[dict[str, Any]]:
        result = self._call(
            f"list Applications in namespace {self.target.namespace!r}",
            self._objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.target.namespace,
            PLURAL,
        )
        return [dict(item) for item in result.get("items") or []]

    def patch(self, name: str, body: Mapping[str, Any], what: str) -> dict[str, Any]:
        """A JSON merge patch (the client's default content type for custom objects)."""
        return dict(
            self._call(
                what,
                self._objects.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                self.target.namespace,
                PLURAL,
                name,
                dict(body),
            )
        )

    def watch(self, name: str, deadline: float, chunk: float = 30.0) -> Iterator[dict[str, Any]]:
        """Every state of Application `name` until the caller stops or `deadline` (monotonic) passes.

        A real watch (no polling): the stream starts with the current object, then each change.
        The field selector narrows it on a real API server; events are filtered by name here too.
        A quiet stream is re-opened at most every `chunk` seconds so the deadline is honoured.
        """
        from kubernetes import watch as kube_watch

        watch: Any = kube_watch
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            w = watch.Watch()
            try:
                for event in w.stream(
                    self._objects.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.target.namespace,
                    PLURAL,
                    field_selector=f"metadata.name={name}",
                    timeout_seconds=max(int(min(remaining, chunk)), 1),
                    _request_timeout=(self.target.timeout, min(remaining, chunk)),
                ):
                    obj = event.get("object")
                    if not isinstance(obj, Mapping) or (obj.get("metadata") or {}).get("name") != name:
                        continue
                    if event.get("type") == "DELETED":
                        raise ArgoApiError(f"Application {name!r} was deleted while waiting for it.")
                    yield dict(obj)
                    if time.monotonic() >= deadline:
                        return
            except ArgoApiError:
                raise
            except Exception as exc:
                if not _is_timeout(exc):
                    raise explain(exc, self.target, f"watch Application {name!r}") from None
            finally:
                w.stop()
