"""`ocync-mockregistry serve`: URL on the first stdout line, clean exit on SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

SERVE = [sys.executable, "-c", "import sys; from mockregistry.cli import main; sys.exit(main())", "serve"]


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*SERVE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    return proc, url


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_prints_url_and_stops_cleanly(signum: signal.Signals, tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.yaml"
    auth_file.write_text("users:\n  alice: pat-a\npublic:\n  - 'pub/*'\n")
    proc, url = start("--profile", "ghcr", "--auth", "token", "--auth-file", str(auth_file),
                      "--rate-limit", "100/10s", "--latency", "1:1", "--seed", "3")
    try:
        assert url.startswith("http://127.0.0.1:"), url
        assert httpx.get(f"{url}/v2/", timeout=5).status_code == 401
        assert httpx.get(f"{url}/v2/", headers={"Authorization": "Bearer pat-a"}, timeout=5).status_code == 200
        token = httpx.get(f"{url}/token", params={"scope": "repository:pub/x:pull"}, timeout=5)
        assert token.status_code == 200
    finally:
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "registry listening on" in err and "storage host listening on" in err


def test_serve_dockerhub_profile_counts_pulls_under_its_pull_limit() -> None:
    proc, url = start("--profile", "dockerhub", "--pull-limit", "7/6h")
    try:
        head = httpx.head(f"{url}/v2/any/thing/manifests/latest", timeout=5)
        assert head.headers["ratelimit-limit"] == "7;w=21600" and head.headers["ratelimit-remaining"] == "7;w=21600"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "profile dockerhub" in err and "pull limit 7/6h" in err, err


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--rate-limit", "lots"], id="bad-rate"),
        pytest.param(["--fault-rate", "2"], id="bad-probability"),
        pytest.param(["--user", "nocolon"], id="bad-user"),
        pytest.param(["--latency", "x"], id="bad-latency"),
        pytest.param(["--latency", "-5"], id="negative-latency"),
        pytest.param(["--port", "99999"], id="port-out-of-range"),
        pytest.param(["--namespace", "nocolon"], id="bad-namespace"),
        pytest.param(["--tags-page-size", "-1"], id="bad-page-size"),
        pytest.param(["--profile", "nope"], id="bad-profile"),
        pytest.param(["--profile", "dockerhub", "--pull-limit", "many"], id="bad-pull-limit"),
    ],
)
def test_serve_rejects_bad_arguments(args: list[str]) -> None:
    result = subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=20)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.startswith("ocync-mockregistry") and ": error: " in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no usage dump


def test_serve_missing_auth_file_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([*SERVE, "--auth-file", str(tmp_path / "nope.yaml")],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0 and "nope.yaml" in result.stderr


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param("users: [a, b]\n", "users must be a mapping", id="users-list"),
        pytest.param("user_namespaces: {alice: 5}\n", "user_namespaces.alice must be a list", id="namespaces-int"),
        pytest.param("public: 5\n", "public must be a list", id="public-int"),
        pytest.param("users: {alice: null}\n", "users.alice must be a token string", id="null-token"),
        pytest.param("usrs: {}\n", "unknown key 'usrs'", id="typo"),
        pytest.param("users: [\n", "invalid YAML", id="broken-yaml"),
    ],
)
def test_serve_rejects_a_bad_auth_file(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "auth.yaml"
    path.write_text(content)
    result = subprocess.run([*SERVE, "--auth-file", str(path)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
