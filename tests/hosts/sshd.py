"""A disposable host for Ansible: a private sshd inside namespaces whose system directories are overlays.

What it is: the system's OpenSSH server (`/usr/sbin/sshd`), with its own config, host key,
authorized key and log in a temporary directory, listening on a free loopback port, logging in as
the current user (root). It runs inside a private mount namespace and a PID namespace
(`unshare --mount --propagation private --pid --fork --mount-proc`), where every system directory
(/etc, /usr (with /usr/local), /var, /opt, /root, /home, /srv, /run, /tmp, /boot, /media) is an
overlayfs mount: the machine's own directory is the read-only lower layer, the upper and work
layers live on a tmpfs mounted inside that namespace. So the host looks like this machine (same
packages, same Python), but everything Ansible does over SSH (files, packages, virtualenvs, /run/sshd)
lands in the overlay and is discarded with the namespace.

Teardown (`stop()`): SIGKILL to sshd, which is PID 1 of its PID namespace — the kernel then kills
every process in the namespace — and to any process still in the mount namespace (the `nsenter`
helpers below); the mounts exist only in that namespace and go with its last process. The
`unshare` process dies with the test process too (parent-death signal), and takes sshd with it
(`--kill-child`). Needs root (mount namespaces, overlayfs) and util-linux `unshare`/`nsenter`.
The network namespace is shared: sshd listens on 127.0.0.1, and the host reaches PyPI/apt as the
machine does.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
# System directories laid over (those that exist as real directories, not symlinks, on this machine).
# /tmp last: its upper layer is found through the tmpfs mounted under the machine's /tmp.
OVERLAID = ("boot", "etc", "home", "media", "opt", "root", "run", "srv", "usr", "var", "tmp")
# What a login on the host sees (the environment of the commands `run` starts inside).
HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
PR_SET_PDEATHSIG = 1
LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here, so the forked child only makes one call
# A private mount namespace, and a PID namespace whose PID 1 is killed when unshare ends.
UNSHARE = ("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc")

# PID 1 of the namespace: lay the overlays, then become sshd (in the foreground, so it stays PID 1).
TARGET_INIT = r"""
set -eu
layers=$1 config=$2 log=$3
shift 3
mount -t tmpfs -o mode=0700 blumeops-target "$layers"
for d in "$@"; do
  if [ -d "/$d" ] && [ ! -L "/$d" ]; then
    mkdir "$layers/$d" "$layers/$d/upper" "$layers/$d/work"
    # The overlay's root takes its owner and mode from the upper layer (/tmp is 1777, /root 0700).
    chown --reference="/$d" "$layers/$d/upper"
    chmod --reference="/$d" "$layers/$d/upper"
    mount -t overlay blumeops-target -o "lowerdir=/$d,upperdir=$layers/$d/upper,workdir=$layers/$d/work" "/$d"
  fi
done
mkdir -p /run/sshd
/usr/sbin/sshd -t -f "$config"
exec /usr/sbin/sshd -D -f "$config" -E "$log"
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mount_namespace(pid: int) -> str:
    """The mount namespace of a process, as the kernel names it (`mnt:[4026532…]`)."""
    return str(Path(f"/proc/{pid}/ns/mnt").readlink())


def processes_in(namespace: str) -> list[int]:
    """Every live process (pid in this machine's view) in the given mount namespace."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str((entry / "ns" / "mnt").readlink()) == namespace:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started us ends (no orphaned hosts)."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class InsideProcess:
    """A long-running command started inside the host's namespaces (see PrivateSshd.spawn)."""

    nsenter: subprocess.Popen[bytes]
    pid: int  # the command itself, in this machine's view

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.nsenter.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.nsenter.wait(timeout=10)


@dataclass
class PrivateSshd:
    """A running disposable host: where its sshd listens, the key that logs in, and its namespaces."""

    workdir: Path
    port: int
    key: Path
    user: str
    pid: int  # sshd: PID 1 of the host's PID namespace, in this machine's view
    log: Path
    supervisor: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    namespace: str = ""  # the host's mount namespace

    def inventory_vars(self) -> str:
        """INI host variables that reach this sshd."""
        return (
            f"ansible_host=127.0.0.1 ansible_port={self.port} ansible_user={self.user} "
            f"ansible_ssh_private_key_file={self.key}"
        )

    def path(self, path: str | Path) -> Path:
        """A path on the host (its overlays), readable from here through /proc/PID/root."""
        return Path(f"/proc/{self.pid}/root") / str(path).lstrip("/")

    def _enter(self) -> list[str]:
        return ["nsenter", f"--target={self.pid}", "--mount", "--pid", "--", "env", "-i"] + [
            f"{k}={v}" for k, v in HOST_ENV.items()
        ]

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command on the host (inside its namespaces, with a login's environment)."""
        return subprocess.run(
            [*self._enter(), *argv], cwd="/", capture_output=True, text=True, timeout=timeout, check=False
        )

    def spawn(self, *argv: str) -> InsideProcess:
        """Start a long-running command on the host; InsideProcess.stop() ends it (so does stop())."""
        nsenter = subprocess.Popen(
            [*self._enter(), *argv], cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = _children(nsenter.pid)
            if children:
                return InsideProcess(nsenter, children[0])
            if nsenter.poll() is not None:
                break
            time.sleep(0.01)
        nsenter.kill()
        nsenter.wait()
        raise RuntimeError(f"could not start {shlex.join(argv)} on the test host")

    def processes(self) -> list[int]:
        """Every process still in the host's mount namespace (empty once stopped)."""
        return processes_in(self.namespace) if self.namespace else []

    def stop(self) -> None:
        """Kill sshd (PID 1 there: the kernel kills the whole namespace) and whatever else is inside."""
        for _ in range(100):
            alive = self.processes()
            if self.pid > 0 and Path(f"/proc/{self.pid}").exists():
                alive = [self.pid, *alive]
            if self.supervisor is not None and self.supervisor.poll() is None:
                alive = [self.supervisor.pid, *alive]
            if not alive:
                break
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        if self.supervisor is not None:
            self.supervisor.wait(timeout=10)


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "blumeops-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _sshd_config(workdir: Path, port: int, host_key: Path, authorized: Path) -> Path:
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {host_key}",
                f"PidFile {workdir / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "StrictModes no",
                "UsePAM no",
                "UseDNS no",
                # This machine's root ~/.bashrc runs `pyenv init` and bash sources it for every
                # command sshd starts (SSH_CLIENT set, SHLVL < 2). SHLVL=1 makes bash skip it, so the
                # test host behaves like a host whose non-interactive shells start plainly.
                "SetEnv SHLVL=1",
                "MaxSessions 64",
                "MaxStartups 64:30:128",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    return config


def _require_namespaces() -> None:
    if not Path(SSHD).exists() or not shutil.which("ssh-keygen"):
        raise RuntimeError("openssh-server is not installed; ./scripts/test installs it")
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        raise RuntimeError("util-linux unshare/nsenter are missing; the disposable test host needs them")
    if os.geteuid() != 0:
        raise RuntimeError("the disposable test host needs root (mount namespaces and overlayfs)")


def start_sshd(workdir: Path, port: int | None = None) -> PrivateSshd:
    """Start a disposable host's sshd on 127.0.0.1 (a free port unless given); wait until it accepts."""
    _require_namespaces()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(c in str(workdir) for c in ",:"):
        raise RuntimeError(f"{workdir}: overlayfs options cannot name a path with ',' or ':'")
    host_key, client_key = workdir / "host_ed25519", workdir / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o600)
    port = port or free_port()
    log, layers = workdir / "sshd.log", workdir / "layers"
    layers.mkdir()
    config = _sshd_config(workdir, port, host_key, authorized)
    with (workdir / "namespace.log").open("wb") as out:
        supervisor = subprocess.Popen(
            [*UNSHARE, "sh", "-c", TARGET_INIT, "target-init", str(layers), str(config), str(log), *OVERLAID],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, no locks taken
        )
    sshd = PrivateSshd(workdir, port, client_key, getpass.getuser(), 0, log, supervisor)
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            if supervisor.poll() is not None:
                raise RuntimeError(
                    f"the test host did not start: {(workdir / 'namespace.log').read_text().strip()[-500:]}"
                )
            if not sshd.pid:
                children = _children(supervisor.pid)
                if children:
                    sshd.pid = children[0]
                    sshd.namespace = mount_namespace(sshd.pid)
            else:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        return sshd
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not start on 127.0.0.1:{port}; see {log}")
    except BaseException:
        sshd.stop()
        raise


def unused_port() -> int:
    """A loopback port nothing listens on (for the unreachable-host test)."""
    return free_port()
