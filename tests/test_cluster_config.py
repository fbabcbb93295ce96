"""The shipped cluster files, checked offline: Ray's own schema and config validation, and the security
and install promises their comments make. tests/test_ray_up.py brings one up for real."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import click
import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_FILES = sorted(ROOT.glob("cluster*.yaml"))
SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
VENV_RAY = "~/tune-digits/.venv/bin/ray"
# The keys the AWS and on-prem files must share word for word: the same install and the same Ray everywhere.
SHARED = ("file_mounts", "rsync_exclude", "setup_commands", "head_start_ray_commands", "worker_start_ray_commands")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def ray_validate(config: dict) -> None:
    """What `ray up` checks before it touches a cloud: the schema, then Ray's own preparation and checks."""
    jsonschema.validate(config, SCHEMA)
    validate_config(prepare_config(copy.deepcopy(config)))


def commands(config: dict) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    return [cmd for key in keys for cmd in config.get(key) or []]


@pytest.fixture(params=CLUSTER_FILES, ids=lambda p: p.name)
def cluster_file(request) -> Path:
    return request.param


def test_both_cluster_files_are_shipped():
    assert {p.name for p in CLUSTER_FILES} >= {"cluster.yaml", "cluster-onprem.yaml"}
    assert load(ROOT / "cluster.yaml")["provider"]["type"] == "aws"
    assert load(ROOT / "cluster-onprem.yaml")["provider"]["type"] == "local"


def test_validates_against_rays_schema_and_config_checks(cluster_file):
    ray_validate(load(cluster_file))


# Each break is caught by the schema or by Ray's checks; the last two only by Ray's checks.
BREAKS = {
    "misspelt key": lambda c: c.__setitem__("setup_comands", c.pop("setup_commands")),
    "max_workers not a number": lambda c: c.__setitem__("max_workers", "four"),
    "provider without type": lambda c: c["provider"].pop("type"),
    "command not a string": lambda c: c["setup_commands"].append({"run": "ray start"}),
    "unknown auth key": lambda c: c["auth"].__setitem__("ssh_port", 2222),
    "file_mounts not a mapping": lambda c: c.__setitem__("file_mounts", ["."]),
}
RAY_ONLY_BREAKS = {
    "aws": ("head_node_type names no node type", lambda c: c.__setitem__("head_node_type", "nowhere")),
    "local": ("no head_ip", lambda c: c["provider"].pop("head_ip")),
}


@pytest.mark.parametrize("name", BREAKS)
def test_a_broken_copy_fails_validation(cluster_file, name):
    config = load(cluster_file)
    BREAKS[name](config)
    with pytest.raises(jsonschema.ValidationError):
        ray_validate(config)


def test_a_copy_broken_beyond_the_schema_fails_rays_checks(cluster_file):
    config = load(cluster_file)
    _, breaker = RAY_ONLY_BREAKS[config["provider"]["type"]]
    breaker(config)
    jsonschema.validate(config, SCHEMA)  # still the right shape...
    with pytest.raises((ValueError, click.ClickException)):  # ...but not a cluster Ray can start
        validate_config(prepare_config(config))


# --- security -----------------------------------------------------------------------------------------

def ray_starts(config: dict) -> list[str]:
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2, starts
    return starts


def test_every_ray_start_has_token_auth_no_usage_stats_and_the_venvs_ray(cluster_file):
    for cmd in ray_starts(load(cluster_file)):
        assert "RAY_AUTH_MODE=token" in cmd, cmd
        assert "--disable-usage-stats" in cmd and "RAY_USAGE_STATS_ENABLED=0" in cmd, cmd
        assert f"{VENV_RAY} start" in cmd, cmd


def test_dashboard_listens_on_the_heads_loopback_only(cluster_file):
    config = load(cluster_file)
    head = next(c for c in config["head_start_ray_commands"] if "--head" in c)
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in cluster_file.read_text()


def test_token_auth_is_never_disabled_and_the_token_is_never_inline(cluster_file):
    text = cluster_file.read_text()
    config = load(cluster_file)
    assert not re.search(r"RAY_AUTH_MODE\s*=\s*(?!token\b)", text), "an auth mode other than token"
    assert "RAY_AUTH_TOKEN" not in text, "the token (or its path) belongs in ~/.ray/auth_token, not here"
    # The token travels as a file from the user's ~/.ray/auth_token, and is private on every node.
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("chmod 600 ~/.ray/auth_token" in c for c in config["setup_commands"])
    # The shells of `ray exec`, `ray submit` and `ray down` send it too (they source ~/.bashrc).
    assert any("RAY_AUTH_MODE=token" in c and ">> ~/.bashrc" in c for c in config["setup_commands"])


SECRET_PATTERNS = {
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS secret key setting": r"(?i)aws_secret_access_key|aws_session_token",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "password": r"(?i)\bpassword\s*[:=]",
    "long random string": r"\b[A-Za-z0-9+/_-]{40,}={0,2}",
}


@pytest.mark.parametrize("kind", SECRET_PATTERNS)
def test_no_secret_in_the_file(cluster_file, kind):
    # Comments included: a pasted key in a comment is as leaked as one in a value.
    text = re.sub(r"resolve:ssm:\S+", "", cluster_file.read_text())  # an AMI's public parameter path
    assert not re.search(SECRET_PATTERNS[kind], text), f"{kind} in {cluster_file.name}"
    auth = load(cluster_file)["auth"]
    if "ssh_private_key" in auth:
        assert auth["ssh_private_key"].startswith(("~/", "/")), "ssh_private_key must be a path"


def test_aws_opens_nothing_but_ssh():
    provider = load(ROOT / "cluster.yaml")["provider"]
    # Ray's default rules are SSH (22) from anywhere plus all traffic inside the group; extra rules
    # would be added to them, so there must be none that opens another port to the outside.
    for rule in provider["security_group"].get("IpPermissions", []):
        assert rule.get("FromPort") == rule.get("ToPort") == 22, rule
    assert provider["cache_stopped_nodes"] is False  # `ray down` terminates, leaves no stopped disk


# --- the install, the same on every node and as the README's ----------------------------------------

def test_shared_settings_are_identical_in_both_files():
    aws, onprem = load(ROOT / "cluster.yaml"), load(ROOT / "cluster-onprem.yaml")
    for key in SHARED:
        assert aws[key] == onprem[key], key


def test_setup_installs_exactly_like_the_makefile(cluster_file):
    """The README's install is `make`'s stamp rule: the same venv, pip line and stamp file."""
    make = (ROOT / "Makefile").read_text()
    rule = make[make.index("$(STAMP):"):].split("\n\n")[0]
    subst = {"$(VENV)": ".venv", "$(PYTHON)": "python3", "$(STAMP)": ".venv/.installed-stamp"}
    lines = [line.strip() for line in rule.splitlines()[1:]]
    for key, value in subst.items():
        lines = [line.replace(key, value) for line in lines]
    install = load(cluster_file)["setup_commands"][0]
    for line in lines:
        assert line in install, f"{line!r} (Makefile) is not in the cluster install"
    # Skipped while the stamp is newer than what the Makefile rule depends on.
    for dep in make[make.index("$(STAMP):"):].split("\n")[0].split(":", 1)[1].split():
        assert f"[ .venv/.installed-stamp -nt {dep} ]" in install


def test_every_command_uses_the_venv_not_the_system_python(cluster_file):
    config = load(cluster_file)
    for cmd in commands(config):
        # Only the venv's creation may name the system's python3; nothing calls a bare python/pip/ray.
        unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "''", cmd)  # echoed text and package specs are not calls
        words = re.findall(r"(?<![\w./~-])(python3?|pip3?|ray|tune-digits)(?![\w./-])", unquoted)
        assert set(words) <= {"python3"} and ("python3" not in words or "-m venv" in cmd
                                                or "import ensurepip" in cmd), cmd
    path_line = next(c for c in config["setup_commands"] if ">> ~/.bashrc" in c)
    assert 'PATH="$HOME/tune-digits/.venv/bin:$PATH"' in path_line


def test_mounted_sources_exist_in_the_checkout(cluster_file):
    for remote, local in load(cluster_file)["file_mounts"].items():
        if local.startswith("~"):
            continue  # the user's token, generated by `ray get-auth-token --generate`
        assert (ROOT / local).exists(), f"{local} (mounted at {remote})"
        assert remote.startswith("~/tune-digits/") and not local.startswith((".venv", "outputs"))


# --- the walk-through shows the shipped files and the steps the end-to-end test runs -------------------

def test_docs_walk_through_uses_the_shipped_files_in_the_tested_order():
    from helpers import WORKFLOW

    readme = (ROOT / "README.md").read_text()
    # Only the README's "Run on a cluster" section (up to the next top-level section).
    docs = readme[readme.index("## Run on a cluster"):]
    docs = docs[:docs.find("\n## ", 1)] if "\n## " in docs[1:] else docs
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", docs, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    lines = [line for line in lines if line.startswith(("ray ", "tune-digits ", ".venv/bin/"))]
    for line in lines:
        if line.startswith("ray ") and (m := re.search(r"\b(cluster[\w-]*\.yaml)", line)):
            assert (ROOT / m.group(1)).is_file(), line
    steps = [step for line in lines if (step := _step(line))]
    positions = [steps.index(step) for step in WORKFLOW if step in steps]
    assert [steps[i] for i in positions] == list(WORKFLOW), f"docs steps {steps}, tested {WORKFLOW}"
    assert positions == sorted(positions), f"docs order {steps}, tested order {WORKFLOW}"


def _step(line: str) -> str | None:
    """`ray exec cluster.yaml 'cd ~/tune-digits && tune-digits search …'` → 'ray exec … tune-digits search'."""
    line = line.removeprefix(".venv/bin/")
    words = line.split()
    if words[0] == "tune-digits":
        return f"tune-digits {words[1]}"
    if words[0] != "ray" or len(words) < 2:
        return None
    if words[1] == "exec":
        inner = re.search(r"'(.*)'", line)
        inner = inner.group(1) if inner else ""
        tool = re.search(r"\b(ray status|tune-digits search)\b", inner)
        return f"ray exec {tool.group(1)}" if tool else "ray exec"
    if words[1] == "job" and len(words) > 2:
        return f"ray job {words[2]}"
    return f"ray {words[1]}"
