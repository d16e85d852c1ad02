"""Path -> layer/target mapping and the apply commands, on plain data and on crafted repo files."""

from __future__ import annotations

from pathlib import Path

from blumeops_tasks.gitops.targets import (
    ArgoIndex,
    HostsIndex,
    LayerInfo,
    commands,
    map_path,
    map_paths,
    read_argo_index,
    read_hosts_index,
)

LAYERS = (
    LayerInfo("tailnet", ("pulumi/",), "tailnet.up"),
    LayerInfo("hosts", ("roles/", "playbooks/", "inventory/", "ansible.cfg"), "hosts.provision"),
    LayerInfo("argocd", ("argocd/",), "argocd.sync"),
)
HOSTS = HostsIndex(
    role_hosts={"caddy": ("indri", "sifaka"), "node_exporter": ("sifaka",)},
    playbook_hosts={"playbooks/indri.yml": ("indri",)},
    group_hosts={"macos": ("gilbert", "indri"), "all": ("gilbert", "indri", "sifaka")},
)
ARGO = ArgoIndex({"argocd/manifests/caddy": "caddy", "argocd/apps": "root"}, frozenset({"argocd/root.yaml"}))


def hit(path: str) -> tuple[str | None, str, str, tuple[str, ...]]:
    h = map_path(path, LAYERS, HOSTS, ARGO)
    return h.layer, h.kind, h.target, h.hosts


def test_shapes() -> None:
    assert hit("roles/caddy/templates/Caddyfile.j2") == ("hosts", "role", "caddy", ("indri", "sifaka"))
    assert hit("roles/unused/tasks/main.yml") == ("hosts", "role", "unused", ())
    assert hit("inventory/host_vars/indri.yml") == ("hosts", "host", "indri", ("indri",))
    assert hit("inventory/host_vars/gilbert/vault.yml") == ("hosts", "host", "gilbert", ("gilbert",))
    assert hit("inventory/group_vars/macos.yml") == ("hosts", "host", "macos", ("gilbert", "indri"))
    assert hit("inventory/group_vars/all.yml") == ("hosts", "layer", "", ())
    assert hit("playbooks/indri.yml") == ("hosts", "host", "indri", ("indri",))
    assert hit("playbooks/site.yml") == ("hosts", "layer", "", ())
    assert hit("ansible.cfg") == ("hosts", "layer", "", ())
    assert hit("argocd/manifests/caddy/deployment.yaml") == ("argocd", "app", "caddy", ())
    assert hit("argocd/apps/caddy.yaml") == ("argocd", "app", "root", ())
    assert hit("argocd/manifests/loki/base/x.yaml") == ("argocd", "app", "loki", ())
    assert hit("argocd/root.yaml") == ("argocd", "layer", "", ())
    assert hit("pulumi/__main__.py") == ("tailnet", "layer", "", ())
    assert hit("README.md") == (None, "unmanaged", "", ())


def test_commands_narrowest_covering_every_change() -> None:
    hits = map_paths(
        [
            "roles/caddy/tasks/main.yml",
            "roles/node_exporter/tasks/main.yml",
            "inventory/host_vars/indri.yml",
            "argocd/manifests/caddy/a.yaml",
            "argocd/apps/caddy.yaml",
            "pulumi/acl.hujson",
            "README.md",
        ],
        LAYERS,
        HOSTS,
        ARGO,
    )
    assert commands(hits, LAYERS) == {
        "tailnet": ["inv tailnet.up"],
        "hosts": [
            "inv hosts.provision --host=indri",
            "inv hosts.provision --host=sifaka --tags caddy,node_exporter",
        ],
        "argocd": ["inv argocd.sync --app=caddy", "inv argocd.sync --app=root"],
    }


def test_whole_layer_change_wins() -> None:
    hits = map_paths(["roles/caddy/tasks/main.yml", "ansible.cfg"], LAYERS, HOSTS, ARGO)
    assert commands(hits, LAYERS) == {"hosts": ["inv hosts.provision"]}


def test_unmanaged_only_gives_no_commands() -> None:
    assert commands(map_paths(["README.md", "docs/x.md"], LAYERS, HOSTS, ARGO), LAYERS) == {}


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def test_readers_on_crafted_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "playbooks/indri.yml": "- hosts: indri\n  roles:\n    - caddy\n    - role: backup\n      tags: [b]\n",
            "playbooks/web.yml": "- hosts: web:sifaka\n  roles: [{name: caddy}]\n",
            "playbooks/site.yml": "- ansible.builtin.import_playbook: indri.yml\n",
            "playbooks/broken.yml": "- hosts: [unclosed\n",
            "roles/backup/meta/main.yml": "dependencies:\n  - role: common\n",
            "roles/common/meta/main.yml": "dependencies: []\n",
            "inventory/hosts.yml": (
                "all:\n  children:\n    macos:\n      hosts:\n        indri: {}\n"
                "    linux:\n      hosts:\n        sifaka: {}\n"
            ),
            "argocd/root.yaml": (
                "kind: Application\nmetadata: {name: blumeops}\nspec:\n  source: {path: argocd/apps}\n"
            ),
            "argocd/apps/caddy.yaml": (
                "kind: Application\nmetadata: {name: caddy}\nspec:\n  source: {path: argocd/manifests/caddy/}\n"
            ),
            "argocd/apps/ext.yaml": (
                "kind: Application\nmetadata: {name: ext}\nspec:\n  sources:\n    - {path: charts/ext}\n"
            ),
        },
    )
    hosts = read_hosts_index(tmp_path)
    assert dict(hosts.role_hosts) == {
        "caddy": ("indri", "sifaka", "web"),
        "backup": ("indri",),
        "common": ("indri",),  # through backup's dependency
    }
    assert dict(hosts.playbook_hosts) == {"playbooks/indri.yml": ("indri",), "playbooks/web.yml": ("web", "sifaka")}
    assert hosts.group_hosts["macos"] == ("indri",)
    assert hosts.group_hosts["all"] == ("indri", "sifaka")
    argo = read_argo_index(tmp_path)
    assert dict(argo.app_paths) == {"argocd/apps": "blumeops", "argocd/manifests/caddy": "caddy"}
    assert argo.manifests == frozenset({"argocd/root.yaml", "argocd/apps/caddy.yaml", "argocd/apps/ext.yaml"})
