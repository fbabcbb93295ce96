"""`--address` to a cluster that does not answer: one line naming the address, exit 1, within the time
`--connect-timeout` (or TUNE_DIGITS_CONNECT_TIMEOUT) gives, instead of ray.init's minutes of retries. Only
loopback addresses: a port nothing listens on, and one whose queue of connections is full, so that a connection
to it hangs until the time is up (a host that drops packets looks like that)."""
from __future__ import annotations

import socket
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from tune_digits.cli import main
from tune_digits.tuning import SearchError
from tune_digits.tuning.connect import check_answers, connect_timeout

TINY = ["search", "linear", "--pairs", "20", "--reps", "1", "--epochs", "1"]


@contextmanager
def silent_port():
    """A port that takes no more connections: listening with a backlog of 0 that one held connection fills."""
    with socket.socket() as server, socket.socket() as held:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        held.connect(server.getsockname())
        yield server.getsockname()[1]


def refusal(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("command", [TINY, ["reproduce", "--quick", "--only", "linear"]])
def test_an_address_nobody_answers_fails_in_the_time_given(tmp_path, hang_guard, command):
    hang_guard(120)  # before the fix, it waited for minutes
    with silent_port() as port:
        result = CliRunner().invoke(main, [*command, "--address", f"127.0.0.1:{port}", "--connect-timeout", "1",
                                           "--output", str(tmp_path)])
    assert refusal(result) == (f"error: no Ray cluster answered at 127.0.0.1:{port} within 1 s (--connect-timeout); "
                               f"check --address")
    assert not list(tmp_path.rglob("search.json"))


def test_a_refused_address_fails_at_once_and_the_time_comes_from_the_environment(tmp_path, hang_guard, monkeypatch):
    hang_guard(120)
    result = CliRunner().invoke(main, [*TINY, "--address", "127.0.0.1:9", "--output", str(tmp_path)])
    assert refusal(result) == "error: cannot reach a Ray cluster at 127.0.0.1:9: Connection refused; check --address"
    monkeypatch.setenv("TUNE_DIGITS_CONNECT_TIMEOUT", "0.5")
    assert connect_timeout() == 0.5 and connect_timeout(3) == 3
    with silent_port() as port, pytest.raises(SearchError, match=r"within 0\.5 s"):
        check_answers(f"127.0.0.1:{port}")
    monkeypatch.setenv("TUNE_DIGITS_CONNECT_TIMEOUT", "soon")
    with pytest.raises(SearchError, match="TUNE_DIGITS_CONNECT_TIMEOUT must be a number of seconds"):
        check_answers("127.0.0.1:9")
