"""A private sshd on 127.0.0.1 that plays a host for Ansible (the tests' "indri" and the benches' hosts).

What it is: the system's OpenSSH server (`/usr/sbin/sshd`), started with its own config, host key,
authorized key and pid file in a temporary directory, listening on a free loopback port, logging in
as the current user (root on the test machine). It is the same machine: "the host" is this machine's
own filesystem, reached over real SSH. Nothing outside the temporary directory is touched except
`/run/sshd` (the privilege-separation directory sshd insists on).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivateSshd:
    """A running sshd: where it listens, and the key that logs in."""

    workdir: Path
    port: int
    key: Path
    user: str
    pid: int
    log: Path

    def inventory_vars(self) -> str:
        """INI host variables that reach this sshd."""
        return (
            f"ansible_host=127.0.0.1 ansible_port={self.port} ansible_user={self.user} "
            f"ansible_ssh_private_key_file={self.key}"
        )

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(50):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "blumeops-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def start_sshd(workdir: Path, port: int | None = None) -> PrivateSshd:
    """Start sshd on 127.0.0.1 (a free port unless given) and wait until it accepts connections."""
    if not Path(SSHD).exists() or not shutil.which("ssh-keygen"):
        raise RuntimeError("openssh-server is not installed; ./scripts/test installs it")
    workdir.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "host_ed25519", workdir / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o600)
    port = port or free_port()
    pidfile, log = workdir / "sshd.pid", workdir / "sshd.log"
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {host_key}",
                f"PidFile {pidfile}",
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
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True, capture_output=True)
    subprocess.run([SSHD, "-f", str(config), "-E", str(log)], check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if pidfile.exists() and pidfile.read_text().strip():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                pass
        time.sleep(0.05)
    else:
        raise RuntimeError(f"sshd did not start on 127.0.0.1:{port}; see {log}")
    pid = int(pidfile.read_text().strip())
    return PrivateSshd(workdir, port, client_key, getpass.getuser(), pid, log)


def unused_port() -> int:
    """A loopback port nothing listens on (for the unreachable-host test)."""
    return free_port()
