"""`ray up` for real: the on-prem cluster file against an SSH node on loopback, token auth on.

The node is this machine, reached through an sshd of the test's own (127.0.0.1, a free port, its own host
key and config in a temporary folder) as a throwaway user. The user is what keeps the test from touching
anything else: its home holds the checkout, ~/.bashrc and ~/.ray/auth_token; its TMPDIR holds the node's
Ray session (so a `ray.init()` elsewhere on this machine does not take it for its current cluster); and the
`ray stop` that `ray down` runs on the node can only stop that user's processes, never another test's Ray,
as it would as root. The cluster's fixed ports are the shipped file's (GCS 6379; the dashboard moves on from
8265 when that is taken, and the test asks the cluster where it is).

The cluster file is a copy of cluster-onprem.yaml that changes only addresses and keys (head_ip,
worker_ips, ssh_user, ssh_private_key, and an ssh_proxy_command that reaches the sshd's port, since Ray's
SSH has no port setting). The commands are the ones README.md ("Run on a cluster") shows, in its order: the token,
`ray up`, `ray status` through `ray exec`, a script through `ray submit`, the dashboard through
`ray dashboard`, a tiny search through `ray job submit` over that tunnel, `tune-digits report --output` on the
search's storage, `ray down`. The node's
tune-digits venv is prepared beforehand (a fresh pip install costs a minute): a venv of its own that reuses
this checkout's installed packages, stamped as installed, so the shipped setup command takes its
"up to date" branch; anything the shipped commands install goes into that venv, never into .venv.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
ONPREM = ROOT / "cluster-onprem.yaml"
VENV_BIN = Path(sys.executable).parent  # the checkout's venv: its `ray` and `tune-digits`
APT_PACKAGES = {"/usr/sbin/sshd": "openssh-server", "rsync": "rsync", "nc": "netcat-openbsd"}
# The tiny search of README.md ("Run on a cluster") (there: resnet, full size), submitted as a Ray job.
SEARCH = ("tune-digits search lenet --pairs 40 --reps 1 --epochs 1 --set kernel_size=5 --set batch_norm=true "
          "--set dropout=false --set aux_loss=true --address auto --name e2e").split()


pytestmark = [pytest.mark.cluster, pytest.mark.slow]


# ---------------------------------------------------------------------------------------------------------
# Preconditions: root, the Debian packages (installed with apt when missing), an interpreter the node's
# user may run. Anything else missing skips with the reason; nothing here ever passes without running.

def _require_root_and_tools() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux (sshd, useradd, /proc)")
    if os.geteuid() != 0:
        pytest.skip("needs root: it creates a throwaway user and runs its own sshd")
    for tool in ("useradd", "userdel", "usermod", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` not found")
    missing = sorted({pkg for exe, pkg in APT_PACKAGES.items() if shutil.which(exe) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"{', '.join(missing)} missing and no apt-get to install them")
    _apt_install(missing)
    still = sorted({pkg for exe, pkg in APT_PACKAGES.items() if shutil.which(exe) is None})
    assert not still, f"apt-get installed {missing} but {still} is still missing"


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Installing openssh-server must not start the system's sshd: a policy-rc.d that denies service
    # starts, only for the duration of the install, and only when the machine has none of its own.
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\n# tune-digits tests: no service starts during apt-get install\nexit 101\n")
        policy.chmod(0o755)
    try:
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:  # a stale or missing package index: refresh once
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"apt-get install {packages} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)


def _interpreter_for(user: pwd.struct_passwd) -> str:
    """A python of this venv's version that `user` may execute (root's pyenv under /root is not one)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys._base_executable), shutil.which(f"python{version}"),
                  f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for exe in candidates:
        try:
            if exe and _run_as(user, [exe, "-c", "import venv"]).returncode == 0:
                return exe
        except OSError:  # not executable for that user
            continue
    pytest.skip(f"no python{version} that an unprivileged user may run (tried {candidates})")


def _run_as(user: pwd.struct_passwd, cmd: list[str], **kw) -> subprocess.CompletedProcess:
    def drop():
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)
    env = {"HOME": user.pw_dir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(cmd, preexec_fn=drop, env=env, cwd=user.pw_dir, capture_output=True, text=True,
                          timeout=300, **kw)


# ---------------------------------------------------------------------------------------------------------
# Processes: only ever the ones this test started, found by pid, by the throwaway uid, or by its key path.

def _procs() -> dict[int, tuple[int, int, str]]:
    """pid → (uid, ppid, command line) for every live process (zombies are dead, only not yet reaped)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if re.search(r"^State:\s+Z", status, re.M):
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        ppid = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))
        out[int(entry)] = (uid, ppid, cmdline.strip())
    return out


def _descendants(root_pid: int, procs: dict) -> set[int]:
    found, frontier = set(), {root_pid}
    while frontier:
        frontier = {pid for pid, (_, ppid, _) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def _kill(pids, sig=signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_until(predicate, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


# ---------------------------------------------------------------------------------------------------------

class Loopback:
    """The throwaway user, its sshd, the local side's environment, and a log of every command run."""

    def __init__(self, base: Path):
        self.base = base
        self.log: list[str] = []
        self.user: pwd.struct_passwd | None = None
        self.sshd: subprocess.Popen | None = None
        self.children: list[subprocess.Popen] = []
        self.made_run_sshd = False
        self.config: str | None = None  # set once `ray up` is attempted
        self.down = False
        self.local_home = base / "local"  # the user's machine: its ~ holds the generated token
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "VIRTUAL_ENV"))}
        self.env.update(HOME=str(self.local_home), RAY_TMPDIR=str(base / "lt"), TMPDIR=str(base / "lt"),
                        RAY_USAGE_STATS_ENABLED="0", PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
        (base / "lt").mkdir()
        self.local_home.mkdir()

    # -- the node ---------------------------------------------------------------------------------------
    def add_user(self) -> None:
        name = f"tdc{secrets.token_hex(4)}"
        home = self.base / "home"
        self.sh(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash",
                 "--user-group", name])
        self.user = pwd.getpwnam(name)
        self.sh(["usermod", "--password", "*", name])  # no password, yet not "locked" for sshd

    def start_sshd(self) -> int:
        b = self.base
        self.sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(b / "host_ed25519")])
        self.sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tune-digits-e2e", "-f", str(b / "id_ed25519")])
        shutil.copy(b / "id_ed25519.pub", b / "authorized_keys")
        (b / "nt").mkdir()  # the node's TMPDIR: Ray's session folder lives there, not in /tmp/ray
        os.chown(b / "nt", self.user.pw_uid, self.user.pw_gid)
        port = free_port()
        (b / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {b}/host_ed25519
PidFile none
AuthorizedKeysFile {b}/authorized_keys
AllowUsers {self.user.pw_name}
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64
SetEnv TMPDIR={b}/nt
LogLevel VERBOSE
""")
        if not Path("/run/sshd").exists():  # sshd's privilege-separation folder
            Path("/run/sshd").mkdir(mode=0o755)
            self.made_run_sshd = True
        self.sh(["/usr/sbin/sshd", "-t", "-f", str(b / "sshd_config")])
        with open(b / "sshd.log", "w") as log:
            self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(b / "sshd_config")],
                                         stdout=log, stderr=subprocess.STDOUT)

        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        assert _wait_until(listening, 10), f"sshd did not listen on {port}:\n{(b / 'sshd.log').read_text()}"
        return port

    def provision_venv(self) -> Path:
        """The node's ~/tune-digits/.venv, as if the shipped setup command had already installed it."""
        home = Path(self.user.pw_dir)
        venv = home / "tune-digits" / ".venv"
        venv.parent.mkdir()
        os.chown(venv.parent, self.user.pw_uid, self.user.pw_gid)
        python = _interpreter_for(self.user)
        self.sh([python, "-m", "venv", "--without-pip", str(venv)])
        # This checkout's packages (torch, ray, tune-digits itself, editable; pip too) without a minute of
        # pip. What pip installs here lands in this venv's own site-packages, never in the checkout's.
        site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        (site / "_tune_digits_checkout.pth").write_text(
            f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
        for script in ("ray", "tune-digits", "pip"):
            body = (VENV_BIN / script).read_text().split("\n", 1)[1]
            (venv / "bin" / script).write_text(f"#!{venv}/bin/python\n{body}")
            (venv / "bin" / script).chmod(0o755)
        (venv / ".installed-stamp").touch()
        self.sh(["chown", "-R", f"{self.user.pw_uid}:{self.user.pw_gid}", str(venv.parent)])
        return venv

    # -- commands ---------------------------------------------------------------------------------------
    def sh(self, cmd: list[str], timeout: float = 300, check: bool = True, cwd: Path = ROOT,
           env: dict | None = None) -> subprocess.CompletedProcess:
        started = time.monotonic()
        try:
            done = subprocess.run(cmd, env={**self.env, **(env or {})}, cwd=cwd, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.log.append(f"$ {' '.join(cmd)}  # TIMEOUT after {timeout}s\n{e.stdout}\n{e.stderr}")
            raise AssertionError(f"timed out after {timeout}s: {' '.join(cmd)}\n{self.tail()}") from None
        self.log.append(f"$ {' '.join(cmd)}  # rc={done.returncode}, {time.monotonic() - started:.1f}s\n"
                        f"{done.stdout}{done.stderr}")
        if check:
            assert done.returncode == 0, f"failed: {' '.join(cmd)}\n{self.tail()}"
        return done

    def ray(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.sh([str(VENV_BIN / "ray"), *args], **kw)

    def popen(self, cmd: list[str]) -> None:
        """A long-running command (`ray dashboard`), in a process group of its own."""
        path = self.base / f"popen{len(self.children)}.log"
        self.log.append(f"$ {' '.join(cmd)}  # in the background, output in {path}")
        with open(path, "w") as log:
            self.children.append(subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop_children(self) -> None:
        for child in self.children:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(child.pid, sig)  # the group we created: the command and its ssh
                except ProcessLookupError:
                    break
                try:
                    child.wait(10)
                    break
                except subprocess.TimeoutExpired:
                    continue

    def tail(self, n: int = 6000) -> str:
        return "\n".join(self.log)[-n:]

    # -- leftovers --------------------------------------------------------------------------------------
    def node_processes(self) -> dict[int, str]:
        """The node user's processes that are not SSH sessions: Ray's, once `ray exec` has returned."""
        procs = _procs()
        sessions = _descendants(self.sshd.pid, procs) if self.sshd else set()
        return {pid: cmd for pid, (uid, _, cmd) in procs.items()
                if uid == self.user.pw_uid and pid not in sessions}

    def ssh_processes(self) -> dict[int, str]:
        """Our sshd with its sessions, and the local ssh clients that use our key (and their ProxyCommand)."""
        procs = _procs()
        ours = {self.sshd.pid} | _descendants(self.sshd.pid, procs) if self.sshd else set()
        key = str(self.base / "id_ed25519")
        clients = {pid for pid, (_, _, cmd) in procs.items() if key in cmd}
        for pid in list(clients):
            clients |= _descendants(pid, procs)
        return {pid: procs[pid][2] for pid in (ours | clients) if pid in procs and pid != os.getpid()}

    def stop_sshd(self) -> None:
        if self.sshd is None:
            return
        sessions = _descendants(self.sshd.pid, _procs())
        self.sshd.terminate()
        try:
            self.sshd.wait(10)
        except subprocess.TimeoutExpired:
            self.sshd.kill()
            self.sshd.wait(10)
        _kill(sessions)  # sessions outlive the listener; they were started by our sshd

    def cleanup(self) -> None:
        self.stop_children()
        if self.config and not self.down:  # the test failed while the cluster was up: take it down
            self.ray("down", "-y", self.config, timeout=120, check=False)
        self.stop_sshd()
        if self.user is not None:
            uid, name = self.user.pw_uid, self.user.pw_name
            _wait_until(lambda: not self._kill_uid(uid), 10)
            # userdel refuses while the user has processes, zombies not yet reaped by init included.
            if not _wait_until(lambda: subprocess.run(["userdel", name], capture_output=True).returncode == 0, 30):
                subprocess.run(["userdel", "--force", name], capture_output=True)
        _kill(self.ssh_processes_by_key())
        if self.made_run_sshd:
            shutil.rmtree("/run/sshd", ignore_errors=True)

    def _kill_uid(self, uid: int) -> list[int]:
        pids = [pid for pid, (u, _, _) in _procs().items() if u == uid]
        _kill(pids)
        return pids

    def ssh_processes_by_key(self) -> list[int]:
        key = str(self.base / "id_ed25519")
        return [pid for pid, (_, _, cmd) in _procs().items() if key in cmd and pid != os.getpid()]


@pytest.fixture
def loopback():
    _require_root_and_tools()
    # A short path: Ray's Unix sockets live under the node's TMPDIR and must stay under ~100 characters.
    base = Path(tempfile.mkdtemp(prefix="tdc-", dir="/tmp"))
    base.chmod(0o755)  # the node's user needs to reach its home, the key list and TMPDIR below
    lb = Loopback(base)
    try:
        yield lb
    finally:
        lb.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def _test_copy(lb: Loopback, port: int) -> Path:
    """cluster-onprem.yaml with only the addresses and keys changed (and the dashboard agent's port)."""
    shipped = yaml.safe_load(ONPREM.read_text())
    config = json.loads(json.dumps(shipped))
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {"ssh_user": lb.user.pw_name, "ssh_private_key": str(lb.base / "id_ed25519"),
                      "ssh_proxy_command": f"nc %h {port}"}
    # Everything else, the commands above all, is the shipped file's.
    assert {k: v for k, v in config.items() if k not in ("provider", "auth")} == \
        {k: v for k, v in shipped.items() if k not in ("provider", "auth")}
    assert {**config["provider"], "head_ip": None, "worker_ips": None} == \
        {**shipped["provider"], "head_ip": None, "worker_ips": None}
    # One machine, several Rays: the dashboard agent's fixed port (52365), which serves Ray Jobs, may be held by
    # another Ray here (an agent that cannot bind it runs without it: "No available agent to submit job").
    # The head's start command gets a free one; on a real cluster each node is its own machine.
    head = config["head_start_ray_commands"]
    [start] = [i for i, cmd in enumerate(head) if "--head" in cmd]
    head[start] = head[start].replace("--dashboard-host=127.0.0.1",
                                      f"--dashboard-host=127.0.0.1 --dashboard-agent-listen-port={free_port()}")
    assert head[start] != shipped["head_start_ray_commands"][start]
    path = lb.base / ONPREM.name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_ray_up_search_report_down_on_loopback(loopback, tmp_path):
    lb = loopback
    t0 = time.monotonic()
    lb.add_user()
    port = lb.start_sshd()
    venv = lb.provision_venv()
    config = lb.config = str(_test_copy(lb, port))
    home = Path(lb.user.pw_dir)

    # 1. The token, generated once on the user's machine; `ray up` copies it to the node, private.
    lb.ray("get-auth-token", "--generate")
    token = (lb.local_home / ".ray" / "auth_token").read_text().strip()
    assert token

    # 2. `ray up`, with the shipped setup commands (the venv counts as installed).
    up = lb.ray("up", "-y", config, timeout=300)
    t_up = time.monotonic()
    assert "tune-digits: .venv is up to date" in up.stdout + up.stderr, "the setup reinstalled the venv"
    node_token = home / ".ray" / "auth_token"
    assert node_token.read_text().strip() == token
    assert node_token.stat().st_mode & 0o777 == 0o600

    # 3. Token auth is on: the shells of `ray exec` have the token; a client without it is refused.
    status = lb.ray("exec", config, "ray status", timeout=120)
    assert "Active:" in status.stdout, status.stdout
    refused = lb.ray("status", "--address", "127.0.0.1:6379", env={"RAY_AUTH_MODE": "disabled"},
                     timeout=120, check=False)
    assert refused.returncode != 0 and "InvalidAuthToken" in refused.stdout + refused.stderr, lb.tail()
    lb.ray("status", "--address", "127.0.0.1:6379", env={"RAY_AUTH_MODE": "token"}, timeout=120)

    # 4. `ray submit` runs the venv's python, which joins the cluster with the token.
    probe = tmp_path / "probe.py"
    probe.write_text("import sys, ray\ncontext = ray.init(address='auto')\n"
                     "print('PROBE', sys.prefix, ray.cluster_resources().get('CPU'), context.dashboard_url)\n")
    submitted = lb.ray("submit", config, str(probe), timeout=120)
    found = re.search(r"PROBE (\S+) (\S+) (\S+)", submitted.stdout)
    assert found, submitted.stdout
    prefix, cpus, dashboard_url = found.groups()
    assert prefix == str(venv) and float(cpus) > 0

    # 5. The dashboard: on the head's loopback only, reached through `ray dashboard`, token required.
    host, remote_port = dashboard_url.rsplit(":", 1)
    assert host == "127.0.0.1", dashboard_url
    local_port = free_port()
    lb.popen([str(VENV_BIN / "ray"), "dashboard", config, "--port", str(local_port), "--remote-port", remote_port])
    api = f"http://127.0.0.1:{local_port}/api/version"
    assert _wait_until(lambda: _http_status(api) is not None, 60), f"no dashboard at {api}\n{lb.tail()}"
    assert _http_status(api) == 401
    assert _http_status(api, token) == 200

    # 6. The search, as a Ray job through that tunnel (the token sent by this shell's `ray job`): its driver
    # runs on the head in an uploaded copy of the checkout; checkpoints and tables go to --storage (a folder
    # on the node, as a shared folder would be). 7. The report, here, reads the storage where it is (this
    # machine sees the node's folder, as one that mounts the share would).
    storage = home / "ray-storage"
    job = lb.ray("job", "submit", "--address", f"http://127.0.0.1:{local_port}", "--working-dir", ".", "--",
                 *SEARCH, "--storage", str(storage), env={"RAY_AUTH_MODE": "token"}, timeout=300)
    assert "1/1 trials finished, 0 failed" in job.stdout + job.stderr, lb.tail()
    lb.stop_children()
    search = json.loads((storage / "lenet" / "e2e" / "search.json").read_text())
    assert search["trials"] and all(t["status"] == "TERMINATED" for t in search["trials"].values()), search
    assert (storage / "lenet" / "e2e" / "ray").is_dir()  # Ray's checkpoints, beside the tables
    assert not (home / "tune-digits" / "outputs").exists()  # the job's outputs/ is in its own copy
    report = lb.sh([str(VENV_BIN / "tune-digits"), "report", "--output", str(storage)], cwd=tmp_path, timeout=300)
    assert "lenet" in report.stdout, report.stdout
    assert any((storage / "report").iterdir())

    # 9. `ray down` leaves no process of the node behind but SSH sessions closing.
    lb.ray("down", "-y", config, timeout=180)
    lb.down = True
    t_down = time.monotonic()
    assert _wait_until(lambda: not lb.node_processes(), 20), \
        f"processes left after `ray down`: {lb.node_processes()}\n{lb.tail()}"

    # Our sshd, its sessions and our ssh clients: all gone once we stop the sshd.
    lb.stop_sshd()
    assert _wait_until(lambda: not lb.ssh_processes(), 15), f"ssh processes left: {lb.ssh_processes()}"
    print(f"\nloopback cluster: {t_up - t0:.0f}s to `ray up` done, {t_down - t0:.0f}s to `ray down` done")
    print("\n".join(entry.split("\n", 1)[0] for entry in lb.log))


def _http_status(url: str, token: str | None = None) -> int | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None
