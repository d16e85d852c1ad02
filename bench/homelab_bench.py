"""Issue 14's benchmark: blumeops against the native validators on a homelab-sized repo, side by side.

    python bench/homelab_bench.py [--runs 5] [--apps 40] [--roles 14] [--hosts 4] [--skip-apply]

Builds a fixture in a temp dir from tests/fixtures/homelab's patterns (its ansible.cfg, tasks.py,
invoke.yaml and Pulumi program; `--apps` kustomize apps like this repo's caddy (Deployment,
Service, a generated ConfigMap), `--roles` roles like the fixture's motd (a template, a variable),
`--hosts` hosts with a playbook each that `site.yml` imports), commits it to a fresh git repo, and
prints medians of interleaved runs (the order rotated each round):

  1. `inv check` warm                     / the slowest native validator, each run alone
  2. `inv check --changed` after editing  / the native validator of that file
     one role file, then one app file       (`ansible-playbook --syntax-check` on the graph that runs
                                             the role; for the app both `kubectl kustomize` alone and
                                             `kubectl kustomize | kubernetes-validate`, the two native
                                             tools `inv check` runs on an app)
  3. `inv hosts.provision` with one change / bare `ansible-playbook --diff` with one change (host1's
                                             host_vars edited and committed before each run, so the
                                             provision runs from its snapshot of the commit; a
                                             disposable host: tests/hosts/sshd.py)
  4. `inv history --limit 20` on a 100k-line journal (absolute seconds)

blumeops runs as an operator installs it: the wheel built from this checkout, installed in a venv
(pip byte-compiles it; the checkout would be compiled on every run, since invoke turns off .pyc writing).
Each edit is made before its timed run and not timed; the file alternates between two contents,
so every run finds a file that changed since the last check. Nothing is written outside the temp dir
(the host's writes land in its overlays).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "homelab"
sys.path.insert(0, str(REPO))

from bench.measure import SAMPLES, medians, timed  # noqa: E402
from tests.wheel_venv import build_wheel, install_wheel  # noqa: E402

GOALS = {
    "check": 1.5,  # inv check warm / slowest native validator (this repo); and <= 2.5 s at homelab size
    "changed": 1.3,  # inv check --changed / the validator of the edited file; and < 1 s on this repo
    "apply": 2.1,  # apply with one change / bare apply
    "history": 0.3,  # seconds
}


# -- the fixture -------------------------------------------------------------------------------------


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def role(root: Path, name: str) -> None:
    base = root / "ansible" / "roles" / name
    write(
        base / "defaults" / "main.yml",
        f"---\n{name}_dir: /opt/homelab/{name}\n{name}_message: managed by the {name} role\n",
    )
    write(
        base / "meta" / "argument_specs.yml",
        "---\nargument_specs:\n  main:\n    short_description: "
        + name
        + "\n    options:\n"
        + "".join(
            f"      {name}_{key}:\n        description:\n          - {key}\n"
            f"        type: str\n        default: {value}\n"
            for key, value in (("dir", f"/opt/homelab/{name}"), ("message", f"managed by the {name} role"))
        ),
    )
    write(base / "meta" / "main.yml", f"---\ngalaxy_info:\n  role_name: {name}\n  author: bench\ndependencies: []\n")
    write(
        base / "tasks" / "main.yml",
        f'---\n- name: {name} | directory\n  ansible.builtin.file:\n    path: "{{{{ {name}_dir }}}}"\n'
        f'    state: directory\n    mode: "0755"\n\n'
        f"- name: {name} | config\n  ansible.builtin.template:\n    src: {name}.conf.j2\n"
        f'    dest: "{{{{ {name}_dir }}}}/{name}.conf"\n    mode: "0644"\n',
    )
    write(
        base / "templates" / f"{name}.conf.j2",
        f"{{{{ ansible_managed | comment }}}}\nmessage = {{{{ {name}_message }}}}\n",
    )


def app(root: Path, index: int) -> None:
    name = f"app{index:02d}"
    write(
        root / "argocd" / "apps" / f"{name}.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n"
        f"  name: {name}\n  namespace: argocd\n  finalizers:\n    - resources-finalizer.argocd.argoproj.io\n"
        "spec:\n  project: default\n  source:\n    repoURL: https://forge.ops.eblu.me/eblume/blumeops.git\n"
        f"    targetRevision: HEAD\n    path: argocd/manifests/{name}\n  destination:\n"
        f"    server: https://kubernetes.default.svc\n    namespace: {name}\n"
        "  syncPolicy:\n    syncOptions:\n      - CreateNamespace=true\n",
    )
    manifests = root / "argocd" / "manifests" / name
    write(
        manifests / "kustomization.yaml",
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {name}\n"
        f"labels:\n  - pairs:\n      app.kubernetes.io/name: {name}\n    includeSelectors: true\n"
        'resources:\n  - deployment.yaml\n  - service.yaml\nimages:\n  - name: caddy\n    newTag: "2.10.2"\n'
        f"configMapGenerator:\n  - name: {name}-config\n    files:\n      - Caddyfile\n",
    )
    write(manifests / "Caddyfile", f':80 {{\n\trespond "{name}"\n}}\n')
    deployment = (REPO / "argocd" / "manifests" / "caddy" / "deployment.yaml").read_text()
    write(manifests / "deployment.yaml", deployment.replace("caddy-config", f"{name}-config").replace("caddy", name))
    service = (REPO / "argocd" / "manifests" / "caddy" / "service.yaml").read_text()
    write(manifests / "service.yaml", service.replace("caddy", name))


def build(root: Path, apps: int, roles: int, hosts: int, connection: dict[str, object] | None) -> None:
    """The homelab fixture's layout and Pulumi program, grown to the given size, committed."""
    import yaml

    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("argocd", "roles", "playbooks", "inventory"))
    write(root / "ansible" / "requirements.yml", "---\ncollections: []\nroles: []\n")
    names = [f"role{i:02d}" for i in range(1, roles + 1)]
    for name in names:
        role(root, name)
    host_names = [f"host{i}" for i in range(1, hosts + 1)]
    vars_ = dict(connection or {}, ansible_python_interpreter=sys.executable if connection else "/usr/bin/python3")
    inventory = {"all": {"children": {"linux": {"hosts": {h: dict(vars_) for h in host_names}}}}}
    write(root / "ansible" / "inventory" / "hosts.yml", yaml.safe_dump(inventory, sort_keys=False))
    write(root / "ansible" / "inventory" / "host_vars" / "host1.yml", "---\nrole01_message: bench change 0\n")
    write(root / "ansible" / "inventory" / "group_vars" / "all.yml", "---\nansible_managed: managed by the bench\n")
    for index, host in enumerate(host_names):
        # Every host runs role01 and a share of the others (each role on at least one host).
        mine = ["role01", *[n for k, n in enumerate(names[1:]) if k % hosts == index]]
        play = [{"name": host, "hosts": host, "gather_facts": False, "roles": [{"role": n, "tags": [n]} for n in mine]}]
        write(root / "ansible" / "playbooks" / f"{host}.yml", "---\n" + yaml.safe_dump(play, sort_keys=False))
    site = [{"name": h, "ansible.builtin.import_playbook": f"{h}.yml"} for h in host_names]
    write(root / "ansible" / "playbooks" / "site.yml", "---\n" + yaml.safe_dump(site, sort_keys=False))
    write(root / "argocd" / "root.yaml", (FIXTURE / "argocd" / "root.yaml").read_text())
    for index in range(1, apps + 1):
        app(root, index)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "homelab")):
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args], cwd=root, check=True
        )


def journal(path: Path, lines: int) -> None:
    """`lines` journal lines: started + end pairs, as applies write them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for n in range(lines // 2):
            base = {
                "time": f"2026-01-01T00:{(n // 60) % 60:02d}:{n % 60:02d}Z",
                "apply_id": f"{n:032x}",
                "user": "bench",
                "machine": "bench",
                "layer": ("hosts", "argocd", "tailnet")[n % 3],
                "task": "hosts.provision",
                "targets": ["host1"],
                "commit": f"{n:040x}",
                "branch": "main",
            }
            out.write(json.dumps({**base, "result": "started"}) + "\n")
            out.write(json.dumps({**base, "result": "succeeded", "code": 0, "message": "ok"}) + "\n")


# -- timing ------------------------------------------------------------------------------------------


class Edits:
    """One-file edits for the --changed measures: each edit first puts every other edited file back
    to its committed content (so only that one file differs from HEAD), then writes a content never
    written before (so no cache has seen it). `restore()` puts everything back (the warm measures)."""

    def __init__(self, *paths: Path) -> None:
        self.original = {path: path.read_text(encoding="utf-8") for path in paths}
        self.count = 0

    def restore(self) -> None:
        for path, text in self.original.items():
            if path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")

    def of(self, path: Path) -> Callable[[], None]:
        def edit() -> None:
            self.restore()
            self.count += 1
            path.write_text(self.original[path] + f"# bench edit {self.count}\n", encoding="utf-8")

        return edit


def row(label: str, ours: float, theirs: float, goal: float) -> str:
    ratio = ours / theirs
    verdict = "meets goal" if ratio <= goal else "MISSES goal"
    return f"  {label:<58} {ours:5.2f} s / {theirs:5.2f} s = {ratio:4.2f}  (goal <= {goal:.2f}: {verdict})"


def main() -> None:  # noqa: PLR0915  # one measure after another, in one place
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measure (median)")
    parser.add_argument("--apps", type=int, default=40, help="ArgoCD apps in the fixture")
    parser.add_argument("--roles", type=int, default=14, help="Ansible roles in the fixture")
    parser.add_argument("--hosts", type=int, default=4, help="inventory hosts (one playbook each)")
    parser.add_argument("--skip-apply", action="store_true", help="no disposable host: skip the apply ratio")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="blumeops-bench-homelab-"))
    sshd = None
    control = work / "cp"
    control.mkdir()
    try:
        connection: dict[str, object] | None = None
        if not args.skip_apply:
            from tests.hosts.sshd import start_sshd

            sshd = start_sshd(work / "sshd")
            key = (sshd.workdir / "host_ed25519.pub").read_text().split()
            known = work / "known_hosts"
            known.write_text(f"[127.0.0.1]:{sshd.port} {key[0]} {key[1]}\n")
            connection = {
                "ansible_host": "127.0.0.1",
                "ansible_port": sshd.port,
                "ansible_user": sshd.user,
                "ansible_ssh_private_key_file": str(sshd.key),
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes",
            }
        root = work / "homelab"
        build(root, args.apps, args.roles, args.hosts, connection)
        (work / "home").mkdir()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANSIBLE_", "INVOKE_", "BLUMEOPS_", "KUBE")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        state = work / "state"
        # What an operator runs: the built wheel installed in a venv (byte-compiled by pip), never the
        # checkout (invoke turns off writing .pyc files, so a checkout compiles its modules on every run).
        print("building the wheel and installing it in a venv ...", flush=True)
        python = install_wheel(build_wheel(mkdir(work / "source"), mkdir(work / "dist")), work / "venv")
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        env.update(
            HOME=str(work / "home"),
            NO_COLOR="1",
            PATH=f"{python.parent}{os.pathsep}{env['PATH']}",
            INVOKE_BLUMEOPS_STATE_DIR=str(state),
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(control),
        )
        ansible_env = {**env, "ANSIBLE_CONFIG": str(root / "ansible" / "ansible.cfg")}
        inv = [str(python), "-m", "invoke"]
        ansible = root / "ansible"
        syntax = ["ansible-playbook", "-i", "inventory", "playbooks/site.yml", "--syntax-check"]
        one_app = root / "argocd" / "manifests" / "app07"

        role_file = ansible / "roles" / "role05" / "tasks" / "main.yml"
        edits = Edits(role_file, one_app / "deployment.yaml")
        role_edit, app_edit = edits.of(role_file), edits.of(one_app / "deployment.yaml")

        def warm(command: list[str], cwd: Path) -> Callable[[], float]:
            def run() -> float:
                edits.restore()
                return timed(command, cwd, ansible_env)

            return run

        validators = {
            "ansible-playbook --syntax-check site.yml": warm(syntax, ansible),
            "ansible-inventory --list": warm(["ansible-inventory", "-i", "inventory", "--list"], ansible),
            "kubectl kustomize (one app)": warm(["kubectl", "kustomize", str(one_app)], root),
            "program under mocks (uncached)": warm(
                [
                    str(python),
                    "-m",
                    "blumeops_tasks.tailnet.mock_runner",
                    "--dir",
                    str(root / "pulumi" / "tailscale"),
                    "--stack",
                    "check",
                ],
                root,
            ),
        }

        # What `inv check` does to an app by hand: render it, then validate the objects' schemas
        # (kubernetes-validate beside this interpreter, never a version manager's shim).
        validator = Path(sys.executable).with_name("kubernetes-validate")
        rendered = work / "rendered.yaml"
        render_and_validate = [
            "bash",
            "-c",
            f"kubectl kustomize {one_app} > {rendered} && "
            f"{validator if validator.exists() else 'kubernetes-validate'} --quiet {rendered}",
        ]

        def after(edit: Callable[[], None], command: list[str], cwd: Path, expect: tuple[int, ...] = (0,)) -> float:
            edit()
            return timed(command, cwd, ansible_env, expect)

        measures: dict[str, Callable[[], float]] = {
            "inv check (warm)": warm([*inv, "check"], root),
            **validators,
            "inv check --changed (role file edited)": lambda: after(role_edit, [*inv, "check", "--changed"], root),
            "syntax-check after the same edit": lambda: after(role_edit, syntax, ansible),
            "inv check --changed (app file edited)": lambda: after(app_edit, [*inv, "check", "--changed"], root),
            "kubectl kustomize after the same edit": lambda: after(
                app_edit, ["kubectl", "kustomize", str(one_app)], root
            ),
            "kustomize + kubernetes-validate, same edit": lambda: after(app_edit, render_and_validate, root),
        }
        print(f"fixture: {args.apps} apps, {args.roles} roles, {args.hosts} hosts in {root}", flush=True)
        print("warm-up: one untimed run of each measure ...", flush=True)
        for measure in measures.values():
            measure()
        print(f"timing {args.runs} runs per measure ...", flush=True)
        results = medians(args.runs, measures)

        apply_results: dict[str, float] = {}
        if sshd is not None:
            # One real change per run: host1's host_vars file alternates between two values of a
            # variable one template uses (an edit, as an operator makes one), for both sides alike.
            host_vars = ansible / "inventory" / "host_vars" / "host1.yml"
            count = [0]

            def one_change() -> None:  # committed, as an operator applies it: the apply runs from a snapshot
                count[0] += 1
                host_vars.write_text(f"---\nrole01_message: bench change {count[0] % 2}\n", encoding="utf-8")
                git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
                subprocess.run([*git, "commit", "-qam", f"change {count[0]}"], cwd=root, check=True)
                subprocess.run(["git", "push", "-q"], cwd=root, check=True)

            bare = ["ansible-playbook", "-i", "inventory", "playbooks/host1.yml", "--diff"]
            origin = work / "origin.git"  # pushed, so the git guard passes as it does for an operator
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
            subprocess.run(["git", "remote", "add", "origin", str(origin)], cwd=root, check=True)
            subprocess.run(["git", "push", "-q", "-u", "origin", "main"], cwd=root, check=True)
            provision = [*inv, "hosts.provision", "--host=host1", "--yes"]
            apply_measures: dict[str, Callable[[], float]] = {
                "inv hosts.provision, one change": lambda: after(one_change, provision, root),
                "bare ansible-playbook --diff, one change": lambda: after(one_change, bare, ansible),
            }
            edits.restore()
            print("converging host1, then timing the applies ...", flush=True)
            after(one_change, bare, ansible)
            for measure in apply_measures.values():
                measure()
            apply_results = medians(args.runs, apply_measures)

        journal(state / "journal.jsonl", 100_000)
        history_command = [*inv, "history", "--limit", "20"]
        history = medians(args.runs, {"inv history --limit 20 (100k lines)": lambda: timed(history_command, root, env)})

        print()
        for name, seconds in {**results, **apply_results, **history}.items():
            print(f"  {name:<44} {seconds:6.2f} s  (median of {args.runs}; samples {SAMPLES[name]})")
        print()
        slowest = max(validators, key=lambda name: results[name])
        print(row(f"inv check warm / {slowest}", results["inv check (warm)"], results[slowest], GOALS["check"]))
        print(f"  {'inv check warm at this size':<58} {results['inv check (warm)']:5.2f} s  (goal <= 2.50 s)")
        print(
            row(
                "inv check --changed (role) / syntax-check of its graph",
                results["inv check --changed (role file edited)"],
                results["syntax-check after the same edit"],
                GOALS["changed"],
            )
        )
        print(
            row(
                "inv check --changed (app) / kubectl kustomize of the app",
                results["inv check --changed (app file edited)"],
                results["kubectl kustomize after the same edit"],
                GOALS["changed"],
            )
        )
        print(
            row(
                "inv check --changed (app) / kustomize + kubernetes-validate",
                results["inv check --changed (app file edited)"],
                results["kustomize + kubernetes-validate, same edit"],
                GOALS["changed"],
            )
        )
        if apply_results:
            print(
                row(
                    "provision with one change / bare apply",
                    apply_results["inv hosts.provision, one change"],
                    apply_results["bare ansible-playbook --diff, one change"],
                    GOALS["apply"],
                )
            )
        seconds = history["inv history --limit 20 (100k lines)"]
        verdict = "meets goal" if seconds <= GOALS["history"] else "MISSES goal"
        print(f"  {'inv history --limit 20, 100k journal lines':<58} {seconds:5.2f} s  (goal <= 0.30 s: {verdict})")
        load = os.getloadavg()[0]
        print(f"\n  environment: {os.cpu_count()} CPUs shared with other work; load {load:.1f} at the end")
    finally:
        if sshd is not None:
            for socket in control.glob("*"):
                subprocess.run(
                    ["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "x"], capture_output=True, check=False
                )
            sshd.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
