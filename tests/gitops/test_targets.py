"""Path -> layer/target mapping and the apply commands, on plain data and on crafted repo files.

The hosts index is Ansible's answer (tests/hosts/test_offline.py runs it on the homelab fixture);
here it is plain data, in the repo's layout and in an adopted `ansible/...` one."""

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
)

LAYERS = (
    LayerInfo("tailnet", ("pulumi/",), "tailnet.up"),
    LayerInfo("hosts", ("roles/", "playbooks/", "inventory/", "ansible.cfg"), "hosts.provision"),
    LayerInfo("argocd", ("argocd/",), "argocd.sync"),
)
HOSTS = HostsIndex(
    role_hosts={"caddy": ("indri", "sifaka"), "node_exporter": ("sifaka",)},
    playbook_hosts={"playbooks/indri.yml": ("indri",), "playbooks/site.yml": ("indri", "sifaka", "gilbert")},
    group_hosts={"macos": ("gilbert", "indri"), "all": ("gilbert", "indri", "sifaka")},
    hosts=frozenset({"gilbert", "indri", "sifaka"}),
    host_playbooks=frozenset({"indri"}),
)
ARGO = ArgoIndex({"argocd/manifests/caddy": "caddy", "argocd/apps": "root"}, frozenset({"argocd/root.yaml"}))


def hit(path: str) -> tuple[str | None, str, str, tuple[str, ...]]:
    h = map_path(path, LAYERS, HOSTS, ARGO)
    return h.layer, h.kind, h.target, h.hosts


def test_shapes() -> None:
    assert hit("roles/caddy/templates/Caddyfile.j2") == ("hosts", "role", "caddy", ("indri", "sifaka"))
    assert hit("roles/unused/tasks/main.yml") == ("hosts", "role", "unused", ())
    assert hit("inventory/host_vars/tern.yml") == ("hosts", "host", "tern", ())  # not an inventory host
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
    assert commands(hits, LAYERS, HOSTS) == {
        "tailnet": ["inv tailnet.up"],
        "hosts": [
            "inv hosts.provision --host=indri",  # indri has playbooks/indri.yml
            "inv hosts.provision --limit=sifaka --tags caddy,node_exporter",  # the default playbook, narrowed
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


def test_an_adopted_layout_maps_by_its_configured_directories() -> None:
    layers = (LayerInfo("hosts", ("ansible/roles/", "ansible/playbooks/", "ansible/inventory/"), "hosts.provision"),)
    index = HostsIndex(
        role_hosts={"motd": ("indri", "ringtail", "sifaka", "tern")},
        playbook_hosts={"ansible/playbooks/linux.yml": ("sifaka", "ringtail"), "ansible/playbooks/site.yml": ()},
        hosts=frozenset({"gilbert", "indri", "ringtail", "sifaka", "tern"}),
        roles_dir="ansible/roles",
        playbooks_dir="ansible/playbooks",
        inventory_dir="ansible/inventory",
        default_playbook="ansible/playbooks/site.yml",
    )
    hits = map_paths(["ansible/playbooks/linux.yml", "ansible/inventory/host_vars/tern.yml"], layers, index, ARGO)
    assert [(h.kind, h.hosts) for h in hits] == [("host", ("tern",)), ("host", ("sifaka", "ringtail"))]
    assert commands(hits, layers, index) == {"hosts": ["inv hosts.provision --limit=ringtail,sifaka,tern"]}
    assert map_path("ansible/playbooks/site.yml", layers, index, ARGO).kind == "layer"
    broken = HostsIndex(error="Ansible cannot list the hosts: boom", roles_dir="ansible/roles")
    hit_ = map_path("ansible/roles/motd/tasks/main.yml", layers, broken, ARGO)
    assert (hit_.kind, hit_.note) == ("layer", "Ansible cannot list the hosts: boom")


def test_argo_reader_on_crafted_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
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
    argo = read_argo_index(tmp_path)
    assert dict(argo.app_paths) == {"argocd/apps": "blumeops", "argocd/manifests/caddy": "caddy"}
    assert argo.manifests == frozenset({"argocd/root.yaml", "argocd/apps/caddy.yaml", "argocd/apps/ext.yaml"})


def test_a_helm_value_file_named_through_a_ref_source_belongs_to_its_app() -> None:
    """The homelab fixture's grafana: a chart from its Helm repository, values kept in this repo
    (`$values/argocd/values/grafana.yaml` with a source `ref: values`)."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "homelab"
    argo = read_argo_index(fixture, "argocd")
    assert argo.app_paths["argocd/values/grafana.yaml"] == "grafana"
    layers = (LayerInfo("argocd", ("argocd/",), "argocd.sync"),)
    hit = map_path("argocd/values/grafana.yaml", layers, HostsIndex(), argo)
    assert (hit.kind, hit.target) == ("app", "grafana")
    assert map_path("argocd/values/other.yaml", layers, HostsIndex(), argo).kind == "layer"  # named by no app
