"""Benchmarks of the hosts layer, measured side by side in one run against a private sshd.

    python bench/hosts_bench.py [--runs 3] [--strategy free|mitogen_free]
    python bench/hosts_bench.py --check-only [--runs 5] [--repo DIR]

--check-only times `inv check --layer=hosts` (no sshd, nothing written outside a temp dir): cold (an
empty state dir, so nothing is cached) and warm (the same state dir again), in DIR (default: this repo).

Starts its own sshd on 127.0.0.1 (tests/hosts/sshd.py: a disposable host in its own mount and PID
namespaces, whose system directories are overlays, as in the tests), provisions the shipped indri
playbook once to converge, then times idempotent runs (median of --runs, interleaved, the order rotated
each round) and prints three ratios with their goals:

  1. ansible-playbook with the repo's ansible.cfg vs ansible's defaults     goal <= 0.60
  2. `inv hosts.provision --yes` vs bare ansible-playbook (repo cfg)          goal <= 1.10
  3. `inv hosts.preview` across 8 inventory hosts vs 1 (same sshd)            goal <= 3.00

--strategy mitogen_free runs every side through Mitogen's stock strategy (the `mitogen` extra), with
the ControlPath in the ssh arguments as ansible.cfg documents it.

Everything the roles write lands in the disposable host's overlays, never on this machine. Stops the
host and the ssh control masters it caused at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measure import SAMPLES, medians, timed  # noqa: E402
from tests.hosts.sshd import PrivateSshd, start_sshd  # noqa: E402

PASSPHRASE = "bench-passphrase-7781"


def connection(sshd: PrivateSshd, known: Path) -> dict[str, object]:
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": sshd.port,
        "ansible_user": sshd.user,
        "ansible_ssh_private_key_file": str(sshd.key),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes",
    }


def inventory(root: Path, name: str, hosts: dict[str, dict[str, object]], as_group: bool) -> Path:
    """The repo's group_vars plus indri's host_vars; with as_group, "indri" is a group of hosts."""
    inv = root / name
    shutil.copytree(REPO / "inventory" / "group_vars", inv / "group_vars")
    if as_group:
        shutil.copy(REPO / "inventory/host_vars/indri.yml", inv / "group_vars" / "indri.yml")
        tree = {"all": {"children": {"linux": {"children": {"indri": {"hosts": hosts}}}}}}
    else:
        (inv / "host_vars").mkdir()
        shutil.copy(REPO / "inventory/host_vars/indri.yml", inv / "host_vars" / "indri.yml")
        tree = {"all": {"children": {"linux": {"hosts": hosts}}}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return inv


def strategy_env(strategy: str, control: Path) -> dict[str, str]:
    """Nothing for ansible.cfg's free; Mitogen's stock strategy with the ControlPath in ssh_args otherwise."""
    if strategy == "free":
        return {}
    from blumeops_tasks.hosts.project import mitogen_strategy_dir

    strategies = mitogen_strategy_dir()
    if strategies is None:
        sys.exit("the mitogen extra is not installed: pip install -e '.[mitogen]'")
    return {
        "ANSIBLE_STRATEGY": strategy,
        "ANSIBLE_STRATEGY_PLUGINS": str(strategies),
        "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist=120s -o ControlPath={control}/%C",
    }


def check_only(runs: int, repo: Path) -> None:
    """`inv check --layer=hosts`, cold (empty state dir) and warm (same state dir again), medians."""
    work = Path(tempfile.mkdtemp(prefix="blumeops-bench-check-"))
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "INVOKE_", "BLUMEOPS_"))}
        base.update(HOME=str(work / "home"), NO_COLOR="1", PYTHONPATH=str(repo))
        (work / "home").mkdir()
        command = [sys.executable, "-m", "invoke", "check", "--layer=hosts"]
        cold, warm = [], []
        for n in range(runs):
            env = {**base, "INVOKE_BLUMEOPS_STATE_DIR": str(work / f"state{n}")}
            started = time.monotonic()
            subprocess.run(command, cwd=repo, env=env, capture_output=True, check=False)
            cold.append(time.monotonic() - started)
            started = time.monotonic()
            subprocess.run(command, cwd=repo, env=env, capture_output=True, check=False)
            warm.append(time.monotonic() - started)
        for label, values in (("cold", cold), ("warm", warm)):
            shown = [round(v, 2) for v in values]
            print(f"  inv check --layer=hosts, {label}: {statistics.median(values):.2f} s (median of {runs}; {shown})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (median)")
    parser.add_argument("--strategy", default="free", help="free (ansible.cfg) or mitogen_free (the extra)")
    parser.add_argument("--check-only", action="store_true", help="time `inv check --layer=hosts` only")
    parser.add_argument("--repo", type=Path, default=REPO, help="repo for --check-only (default: this one)")
    args = parser.parse_args()
    if args.check_only:
        check_only(args.runs, args.repo.resolve())
        return

    work = Path(tempfile.mkdtemp(prefix="blumeops-bench-hosts-"))
    sshd = start_sshd(work / "sshd")
    control = work / "cp"
    control.mkdir()
    try:
        key = (sshd.workdir / "host_ed25519.pub").read_text().split()
        known = work / "known_hosts"
        known.write_text(f"[127.0.0.1]:{sshd.port} {key[0]} {key[1]}\n")
        (work / "home").mkdir()
        # PYTHONDONTWRITEBYTECODE is dropped (some sandboxes set it): on an operator's machine Python
        # caches bytecode after the first run, for the tasks and for the repo's ansible plugins alike.
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANSIBLE_", "INVOKE_", "BLUMEOPS_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        base.update(
            HOME=str(work / "home"),
            NO_COLOR="1",
            BORG_PASSPHRASE=PASSPHRASE,
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(control),
            INVOKE_BLUMEOPS_STATE_DIR=str(work / "state"),
        )
        conn = connection(sshd, known)
        one = inventory(work, "one", {"indri": conn}, as_group=False)
        group1 = inventory(work, "group1", {"indri1": conn}, as_group=True)
        group8 = inventory(work, "group8", {f"indri{i}": conn for i in range(1, 9)}, as_group=True)

        repo_env = {
            **base,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_HOME": str(work / "ah-repo"),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(work / "facts"),
            **strategy_env(args.strategy, control),
        }
        empty_cfg = work / "empty.cfg"
        empty_cfg.write_text("")
        # Ansible's defaults: an empty config; only the roles path is given (not a speed knob).
        default_env = {
            **base,
            "ANSIBLE_CONFIG": str(empty_cfg),
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_HOME": str(work / "ah-default"),
        }
        playbook = ["ansible-playbook", "-i", str(one), "playbooks/indri.yml"]
        inv_env = {**repo_env, "INVOKE_BLUMEOPS_HOSTS_INVENTORY": str(one)}
        inv = [sys.executable, "-m", "invoke"]

        print(f"sshd on 127.0.0.1:{sshd.port}; converging indri once ...", flush=True)
        timed(playbook, REPO, repo_env)
        timed(playbook, REPO, default_env)

        measures: dict[str, Callable[[], float]] = {
            "repo ansible.cfg": lambda: timed(playbook, REPO, repo_env),
            "ansible defaults": lambda: timed(playbook, REPO, default_env),
            "inv hosts.provision --yes": lambda: timed(
                [*inv, "hosts.provision", "--host=indri", "--yes", "--allow-dirty"], REPO, inv_env
            ),
            "hosts.preview, 1 host": lambda: timed(
                [*inv, "hosts.preview", "--host=indri"],
                REPO,
                {**repo_env, "INVOKE_BLUMEOPS_HOSTS_INVENTORY": str(group1)},
                expect=(0, 2),
            ),
            "hosts.preview, 8 hosts": lambda: timed(
                [*inv, "hosts.preview", "--host=indri"],
                REPO,
                {**repo_env, "INVOKE_BLUMEOPS_HOSTS_INVENTORY": str(group8)},
                expect=(0, 2),
            ),
        }
        # Warm-up: one untimed pass of every measure, so each side starts with its facts cached
        # (repo cfg), its syntax check cached and its ssh control master open, as on a second run.
        print("warm-up: one untimed run of each measure ...", flush=True)
        for measure in measures.values():
            measure()
        print(f"timing {args.runs} runs per side ...", flush=True)
        results = medians(args.runs, measures)
        print()
        for name, seconds in results.items():
            print(f"  {name:<28} {seconds:6.2f} s (median of {args.runs}; samples {SAMPLES[name]})")
        print()
        rows = [
            (
                "repo ansible.cfg / ansible defaults (idempotent)",
                results["repo ansible.cfg"] / results["ansible defaults"],
                0.60,
            ),
            (
                "inv hosts.provision --yes / bare ansible-playbook",
                results["inv hosts.provision --yes"] / results["repo ansible.cfg"],
                1.10,
            ),
            (
                "hosts.preview 8 hosts / 1 host",
                results["hosts.preview, 8 hosts"] / results["hosts.preview, 1 host"],
                3.00,
            ),
        ]
        for label, ratio, goal in rows:
            verdict = "meets goal" if ratio <= goal else "MISSES goal"
            print(f"  {label:<52} {ratio:5.2f}  (goal <= {goal:.2f}: {verdict})")
        print(
            f"\n  environment: controller and all 'hosts' share this machine's {os.cpu_count()} CPUs; the test"
            "\n  sshd sets SHLVL=1 so root's ~/.bashrc (pyenv init, ~0.2 s) is not sourced per SSH command."
        )
    finally:
        for socket in control.glob("*"):
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "x"], capture_output=True, check=False)
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
