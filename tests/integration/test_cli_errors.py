"""Hardening: every command, fed what a careless or unlucky user feeds it, answers with one
line naming the culprit, the documented exit code (0 ok, 1 partial, 2 failure, 3 invalid
config/arguments, 4 auth; an interrupt that left work undone is 1), never a traceback and never
a secret.

Most cases run in-process through ``ocync.cli.main.main`` (fast); a few run the real console
script in a subprocess to prove what the user's terminal shows (closed stdout, Ctrl-C, -vv).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ocync.cli.main import _report, main
from ocync.errors import NotFound, TransportError, Unauthorized
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.mockproc import MockProcess

sys.path.insert(0, str(Path(__file__).parent))
from imageseed import make_index, push_image  # noqa: E402

PAT = "PAT-alice-0123456789-SECRET"
WRONG = "WRONG-password-SECRET"
OCYNC = [sys.executable, "-m", "ocync"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``ocync ARGV`` in-process -> (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors exit through parser.exit()
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ocync: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- servers that are not registries ------------------------------------------------------------


class OddServer:
    """A loopback TCP server answering every connection the same odd way (in a thread)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self.accepted = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = conn.recv(65536)
                self.accepted.set()
                if self.mode == "hang":
                    self.stop.wait(30)
                elif self.mode == "garbage":
                    conn.sendall(b"\x00\x01 SSH-2.0-not-http\r\n\r\n")
                elif self.mode == "html":
                    body = b"<html><body>Welcome to nginx!</body></html>"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                elif self.mode == "badrealm" and not request.startswith(b"GET /token"):
                    challenge = f'Bearer realm="http://{self.host}/token",service="x"'.encode()
                    conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: %s\r\nContent-Length: 0\r\n\r\n"
                                 % challenge)
                elif self.mode == "badrealm":  # the token endpoint is a login page
                    body = b"<html>Sign in</html>"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                elif self.mode == "denied":
                    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                # "close": say nothing at all
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def odd() -> Iterator[dict[str, OddServer]]:
    servers = {m: OddServer(m) for m in ("hang", "garbage", "html", "denied", "close", "badrealm")}
    yield servers
    for server in servers.values():
        server.close()


# -- a token-auth mock registry with one image, in its own process --------------------------------


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    """host:port of a ghcr-profile mock (token auth, alice's PAT) holding alice/app:1.0."""
    with MockProcess(["--profile", "ghcr", "--auth", "token", "--user", f"alice:{PAT}", "--public", "pub/*"]) as mock:
        host = mock.url.removeprefix("http://")

        async def seed() -> None:
            auth = AuthSettings(kind="basic", username="alice", password=PAT)
            async with RegistryClient(host, ClientSettings(auth=auth)) as client:
                await push_image(client, "alice/app", make_index(random.Random(7), "1.0"))

        trio.run(seed)
        yield host


def docker_config(tmp_path: Path, host: str, password: str) -> Path:
    auth = base64.b64encode(f"alice:{password}".encode()).decode()
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return path


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        pytest.param(["copy"], ["required: SRC, DST"], id="copy-no-args"),
        pytest.param(["copy", "--bogus", "a", "b"], ["unrecognized arguments: --bogus"], id="unknown-flag"),
        pytest.param(["bogus"], ["invalid choice: 'bogus'"], id="unknown-command"),
        pytest.param(["copy", "a:b:c", "x"], ["invalid reference 'a:b:c'"], id="two-colons"),
        pytest.param(["copy", "a@sha256:zz", "x"], ["invalid digest 'sha256:zz'"], id="bad-digest"),
        pytest.param(["copy", "Bad//ref", "x"], ["invalid reference 'Bad//ref'"], id="empty-component"),
        pytest.param(["tags", "localhost:99999/x"], ["invalid reference 'localhost:99999/x'", "bad port '99999'"],
                     id="tags-port-out-of-range"),
        pytest.param(["copy", "localhost:99999/x:1", "localhost:5000/y"],
                     ["invalid reference 'localhost:99999/x:1'", "bad port"], id="copy-port-out-of-range"),
        pytest.param(["copy", "a/b:1", "host:abc/x"], ["invalid reference 'host:abc/x'", "bad port 'abc'"],
                     id="copy-port-not-a-number"),
        pytest.param(["copy", "https://ghcr.io/o/a:1", "x"], ["no https://", "'ghcr.io/o/a:1'"], id="url-not-reference"),
        pytest.param(["copy", "--retries", "0", "a", "b"], ["--retries must be at least 1"], id="retries-0"),
        pytest.param(["copy", "--timeout", "nan", "a", "b"], ["--timeout must be a positive"], id="timeout-nan"),
        pytest.param(["copy", "--authfile", "/nonexistent/auth.json", "a", "b"],
                     ["--authfile /nonexistent/auth.json: no such file"], id="authfile-missing"),
        pytest.param(["copy", "--authfile", "/nonexistent", "a", "b"],
                     ["--authfile /nonexistent: no such file"], id="authfile-without-json-suffix-missing"),
        pytest.param(["copy", "--platform", "Linux", "a", "b"], ["invalid platform 'Linux'"], id="bad-platform"),
        pytest.param(["tags", "x", "--latest", "2"], ["--latest needs --sort"], id="latest-without-sort"),
        pytest.param(["tags", "x", "--semver", ">>1"], ["--semver: invalid semver range"], id="bad-semver"),
        pytest.param(["tags", "x:tag"], ["must not have a tag"], id="tags-with-tag"),
        pytest.param(["tags", "x", "--min-tags", "-1", "--tags-from", "/dev/null"], ["--min-tags must be 0"],
                     id="negative-min-tags"),
        pytest.param(["tags", "x", "--exclude", " ", "--tags-from", "/dev/null"], ["--exclude: empty pattern"],
                     id="empty-exclude"),
        pytest.param(["tags", "x", "--tags-from", "/"], ["--tags-from /: Is a directory"], id="tags-from-dir"),
        pytest.param(["validate", "/nonexistent.yaml"], ["/nonexistent.yaml: no such file"], id="missing-config"),
        pytest.param(["validate", "/dev/zero"], ["/dev/zero: larger than 16MiB"], id="endless-config"),
        pytest.param(["tags", "x", "--tags-from", "/dev/zero"], ["--tags-from /dev/zero: larger than"],
                     id="endless-tags-file"),
        pytest.param(["sync", "-c", "/nonexistent.yaml"], ["/nonexistent.yaml: no such file"], id="sync-missing"),
        pytest.param(["analyze", "-c", "/"], ["/: cannot read"], id="analyze-directory"),
    ],
)
def test_bad_arguments_are_one_line_exit_3(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 3 and out == ""
    one_error(err, *fragments)


def test_garbage_docker_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for name, content in (("deep.json", b'{"auths": ' + b"[" * 100000 + b"]" * 100000 + b"}"),
                          ("garbage.json", b"{not json SECRET-ish")):
        path = tmp_path / name
        path.write_bytes(content)
        code, out, err = run(capsys, "copy", "--authfile", str(path), "127.0.0.1:1/a/b:1", "127.0.0.1:1/c/d")
        assert code == 3 and out == ""
        assert "SECRET" not in one_error(err, f"docker config {path} is not valid JSON")


@pytest.mark.parametrize(
    ("script", "fragment"),
    [
        pytest.param("echo 'keychain locked SECRET' >&2; exit 1", "exited with 1 for 127.0.0.1:1", id="fails"),
        pytest.param("echo 'not json SECRET'", "printed no JSON for 127.0.0.1:1", id="garbage"),
    ],
)
def test_misbehaving_credential_helper(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str,
    fragment: str,
) -> None:
    helper = tmp_path / "bin" / "docker-credential-odd"
    helper.parent.mkdir()
    helper.write_text(f"#!/bin/sh\n{script}\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr("ocync.registry.dockerconfig.CREDENTIAL_HELPER_TIMEOUT", 0.5)
    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credHelpers": {"127.0.0.1:1": "odd"}}))
    started = time.monotonic()
    code, out, err = run(capsys, "copy", "--authfile", str(config), "127.0.0.1:1/a/b:1", "127.0.0.1:2/c/d")
    assert code == 3 and out == "" and time.monotonic() - started < 10
    assert "SECRET" not in one_error(err, "credential helper docker-credential-odd", fragment)


CONTROL_CHARACTER = "contains a control character (a line break or CR?); the value is not shown"
SPLIT_SECRET = "PART1-SECRET\nPART2-SECRET"


def secret_parts(secret: str) -> list[str]:
    """The secret and its pieces between control characters: none may be shown."""
    return [secret, *(part for part in re.split(r"[\r\n]", secret) if part)]


@pytest.mark.parametrize(
    ("entry", "script", "fragment"),
    [
        pytest.param({"auth": base64.b64encode(f"alice:{PAT}\r".encode()).decode()}, None,
                     "the auth entry for 127.0.0.1:1", id="auth-crlf"),
        pytest.param({"identitytoken": SPLIT_SECRET}, None, "the identitytoken for 127.0.0.1:1", id="identitytoken"),
        pytest.param({"username": "alice", "password": SPLIT_SECRET}, None, "the password for 127.0.0.1:1",
                     id="plain-password"),
        pytest.param(None, """printf '%s\\n' '{"Username": "alice", "Secret": "PART1-SECRET\\nPART2-SECRET"}'""",
                     "credential helper docker-credential-odd: the secret for 127.0.0.1:1", id="helper"),
    ],
)
def test_a_docker_config_credential_with_a_control_character_is_refused_unseen(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    entry: dict[str, str] | None, script: str | None, fragment: str,
) -> None:
    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    if script is None:
        config.write_text(json.dumps({"auths": {"127.0.0.1:1": entry}}))
        secret = entry["auth"] if entry and "auth" in entry else SPLIT_SECRET
    else:
        helper = tmp_path / "bin" / "docker-credential-odd"
        helper.parent.mkdir()
        helper.write_text(f"#!/bin/sh\n{script}\n")
        helper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
        config.write_text(json.dumps({"credHelpers": {"127.0.0.1:1": "odd"}}))
        secret = SPLIT_SECRET
    code, out, err = run(capsys, "copy", "-vv", "--authfile", str(config), "127.0.0.1:1/a/b:1", "127.0.0.1:2/c/d")
    assert code == 3 and out == ""
    line = one_error(err, fragment, CONTROL_CHARACTER)
    for part in [*secret_parts(secret), PAT]:
        assert part not in line


def test_authfile_is_the_file_given_whatever_its_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """skopeo/podman keep credentials in e.g. ${XDG_RUNTIME_DIR}/containers/auth.json, users
    in files of any name: the path is used as given; a directory means its config.json."""
    as_given = tmp_path / "registry-auth"
    as_given.write_bytes(b"{not json")
    code, out, err = run(capsys, "copy", "--authfile", str(as_given), "127.0.0.1:1/a/b:1", "127.0.0.1:2/c/d")
    assert code == 3 and out == ""
    one_error(err, f"docker config {as_given} is not valid JSON")

    missing = tmp_path / "gone" / "registry-auth"
    code, out, err = run(capsys, "copy", "--authfile", str(missing), "127.0.0.1:1/a/b:1", "127.0.0.1:2/c/d")
    assert code == 3 and out == ""
    assert one_error(err) == f"ocync: error: --authfile {missing}: no such file"

    directory = tmp_path / "docker-dir"
    directory.mkdir()
    (directory / "config.json").write_bytes(b"{not json")
    code, out, err = run(capsys, "copy", "--authfile", str(directory), "127.0.0.1:1/a/b:1", "127.0.0.1:2/c/d")
    assert code == 3 and out == ""
    one_error(err, f"docker config {directory / 'config.json'} is not valid JSON")


def process_gone(pid: int) -> bool:
    """Not running: no such process, or a zombie nobody has reaped yet (PID 1 in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_hanging_credential_helper_is_killed_and_the_run_goes_on_anonymously(tmp_path: Path) -> None:
    """A helper stuck on a locked keychain (and the agent it started) is killed with its whole
    process group after OCYNC_CREDENTIAL_HELPER_TIMEOUT; the public registry is then read anonymously."""
    pids = tmp_path / "pids"
    pids.mkdir()
    helper = tmp_path / "bin" / "docker-credential-stuck"
    helper.parent.mkdir()
    helper.write_text(
        "#!/bin/sh\n"
        "echo $$ > \"$PIDS/helper\"\n"
        "sleep 300 &\n"  # the agent the helper started, holding nothing but time
        "echo $! > \"$PIDS/grandchild\"\n"
        "exec sleep 300\n"
    )
    helper.chmod(0o755)
    with MockProcess(["--auth", "none"]) as mock:
        host = mock.url.removeprefix("http://")

        async def seed() -> None:
            async with RegistryClient(host, ClientSettings()) as client:
                await push_image(client, "lib/app", make_index(random.Random(3), "1.0"))

        trio.run(seed)
        docker = tmp_path / "docker"
        docker.mkdir()
        (docker / "config.json").write_text(json.dumps({"credHelpers": {host: "stuck"}}))
        config = tmp_path / "ocync.yaml"
        config.write_text(f"global: {{cache_dir: {tmp_path / 'cache'}}}\nregistries:\n  r: {{url: '{host}'}}\n"
                          "mappings:\n  - {from: lib/app, to: lib/copy, source: r, targets: [r]}\n")
        env = dict(os.environ, PATH=f"{helper.parent}{os.pathsep}{os.environ['PATH']}", PIDS=str(pids),
                   DOCKER_CONFIG=str(docker), OCYNC_CREDENTIAL_HELPER_TIMEOUT="2")
        try:
            result = subprocess.run([*OCYNC, "sync", "-c", str(config)], capture_output=True, text=True, env=env,
                                    timeout=120)
            assert result.returncode == 0, result.stderr
            warning = [line for line in result.stderr.splitlines() if line.startswith("ocync: WARNING: ")]
            assert len(warning) == 1 and "credential helper docker-credential-stuck did not answer within 2 s" in \
                warning[0] and warning[0].endswith("anonymous"), result.stderr
            assert "Traceback" not in result.stderr
            started = {name: int((pids / name).read_text()) for name in ("helper", "grandchild")}
            deadline = time.monotonic() + 10
            while not all(map(process_gone, started.values())) and time.monotonic() < deadline:
                time.sleep(0.05)  # SIGKILL was sent before ocync exited; the kernel may lag a little
            assert {name: process_gone(pid) for name, pid in started.items()} == {"helper": True, "grandchild": True}
        finally:
            for name in ("helper", "grandchild"):
                if (pids / name).exists() and not process_gone(pid := int((pids / name).read_text())):
                    os.kill(pid, signal.SIGKILL)  # what an unfixed ocync leaves behind


def test_group_command_without_subcommand_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "auth")
    assert code == 3 and out == ""
    assert err.startswith("ocync: error: 'auth' needs a subcommand\nusage: ocync auth ")
    assert "check" in err


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(b"v1\n\xe4\xff\x00\n", "not UTF-8 text", id="binary"),
        pytest.param(b"v1\n# comment\n\n v2 \nbad tag\n", ":5: 'bad tag' is not a tag", id="bad-tag"),
    ],
)
def test_tags_from_a_garbage_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "tags.txt"
    path.write_bytes(content)
    code, out, err = run(capsys, "tags", "x", "--tags-from", str(path))
    assert code == 3 and out == ""
    one_error(err, f"--tags-from {path}", fragment)


# -- config files --------------------------------------------------------------------------------


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)
)


@pytest.mark.parametrize(
    ("content", "fragments", "secret"),
    [
        pytest.param(b"\x8f\x00\xff" * 100, ["cannot read", "utf-8"], None, id="binary"),
        pytest.param(BOMB.encode(), ["more than 200000 values", "alias bomb"], None, id="alias-bomb"),
        pytest.param(b"- a\n- b\n", ["must be a mapping"], None, id="a-list"),
        pytest.param(b"a: " + b"[" * 20000 + b"]" * 20000 + b"\n", ["invalid YAML: nested too deeply"], None,
                     id="nesting-bomb"),
        pytest.param(b"registries: {r: {url: 'https://bob:hunter2-SECRET@quay.io'}}\nmappings: []\n",
                     ["registries.r.url", "credentials in the url"], "hunter2-SECRET", id="url-userinfo"),
        pytest.param(b"registries: {r: {url: quay.io, credentials: 'bob:hunter2-SECRET'}}\nmappings: []\n",
                     ["registries.r.credentials"], "hunter2-SECRET", id="credentials-as-string"),
        pytest.param(b"registries: {r: {url: quay.io, token: [tok-SECRET]}}\nmappings: []\n",
                     ["registries.r.token"], "tok-SECRET", id="token-as-list"),
    ],
)
def test_garbage_config_is_one_line_exit_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, fragments: list[str],
    secret: str | None,
) -> None:
    path = tmp_path / "ocync.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    for command in (["validate", str(path)], ["sync", "--dry-run", "-c", str(path)]):
        code, out, err = run(capsys, *command)
        assert code == 3 and out == "", (command, out)
        one_error(err, *fragments)
        if secret is not None:
            assert secret not in err
    assert time.monotonic() - started < 20  # the alias bomb is refused, not expanded


def test_a_file_that_is_no_config_at_all_gives_a_bounded_answer(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "passwd"
    path.write_text("".join(f"user{i}:x:{i}:{i}::\n" for i in range(500)))  # shadow-like: keys
    code, out, err = run(capsys, "validate", str(path))
    lines = err.strip().splitlines()
    assert code == 3 and out == "" and len(lines) == 21 and "Traceback" not in err
    assert lines[-1] == f"ocync: error: {path}: ... and 480 more problems (is this an ocync config?)"


# -- the network ---------------------------------------------------------------------------------


def test_connection_refused_names_the_host(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code, out, err = run(capsys, "copy", "--retries", "1", f"127.0.0.1:{port}/a/b:1", "127.0.0.1:1/c/d")
    assert code == 2 and out == ""
    one_error(err, f"127.0.0.1:{port}: connection refused (GET /v2/a/b/manifests/1)")


def test_unresolvable_host_names_the_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "copy", "--retries", "1", "no-such-host.invalid/a/b:1", "127.0.0.1:1/c/d")
    assert code == 2 and out == ""
    one_error(err, "no-such-host.invalid: cannot resolve the host name")


@pytest.mark.parametrize(
    ("mode", "code", "fragment"),
    [
        pytest.param("garbage", 2, "the answer is not HTTP", id="not-http"),
        pytest.param("html", 2, "the registry answered text/html, not a manifest", id="html"),
        pytest.param("denied", 4, "HTTP 403 (DENIED: requested access to the resource is denied)", id="denied"),
        pytest.param("close", 2, "closed the connection without answering", id="silent-close"),
        pytest.param("hang", 2, "no answer within 0.3 s", id="hang"),
        pytest.param("badrealm", 4, "failed (anonymous): token endpoint answered something that is not JSON",
                     id="token-endpoint-html"),
    ],
)
def test_copy_from_a_server_that_is_no_registry(
    capsys: pytest.CaptureFixture[str], odd: dict[str, OddServer], mode: str, code: int, fragment: str
) -> None:
    host = odd[mode].host
    started = time.monotonic()
    got, out, err = run(capsys, "copy", "--retries", "2", "--timeout", "0.3", f"{host}/a/b:1", "127.0.0.1:1/c/d")
    assert got == code and out == ""
    line = one_error(err, fragment)
    assert host in line
    assert time.monotonic() - started < 10  # a hung server costs two timeouts, not five


@pytest.mark.parametrize(
    ("mode", "code", "fragment"),
    [
        pytest.param("html", 2, "the answer is not JSON (text/html) (is this a registry?)", id="html"),
        pytest.param("denied", 4, "listing tags of", id="denied"),
    ],
)
def test_tags_from_a_server_that_is_no_registry(
    capsys: pytest.CaptureFixture[str], odd: dict[str, OddServer], mode: str, code: int, fragment: str
) -> None:
    host = odd[mode].host
    got, out, err = run(capsys, "tags", f"{host}/a/b", "--timeout", "2")
    assert got == code and out == ""
    one_error(err, fragment, f"{host}/a/b")


def test_sync_with_an_unreachable_source_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, odd: dict[str, OddServer]
) -> None:
    port = closed_port()
    config = tmp_path / "ocync.yaml"
    config.write_text(
        f"global: {{cache_dir: {tmp_path / 'cache'}}}\n"
        f"registries:\n  src: {{url: '127.0.0.1:{port}'}}\n  dst: {{url: '{odd['html'].host}'}}\n"
        "mappings:\n  - {from: a/b, source: src, targets: [dst]}\n"
    )
    code, out, err = run(capsys, "sync", "--dry-run", "-c", str(config))
    assert code == 2 and out == ""
    one_error(err, "registry src", f"127.0.0.1:{port}: connection refused")


# -- a real registry: auth failures, missing things, secrets ---------------------------------------


def test_registry_answers_map_to_exit_codes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = registry
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
    code, _, err = run(capsys, "copy", f"{host}/alice/app:1.0", f"{host}/alice/copy")  # anonymous push
    assert code == 4
    one_error(err, f"authentication to {host} failed (anonymous)")

    code, _, err = run(capsys, "copy", f"{host}/pub/nothing:1", f"{host}/alice/copy")
    assert code == 2
    one_error(err, f"manifest {host}/pub/nothing:1: HTTP 404")

    good = docker_config(tmp_path / "good", host, PAT)
    code, _, err = run(capsys, "copy", "--authfile", str(good), f"{host}/alice/app:nope", f"{host}/alice/copy")
    assert code == 2
    one_error(err, "MANIFEST_UNKNOWN")

    code, _, err = run(capsys, "copy", "--authfile", str(good), f"{host}/alice/app:1.0", f"{host}/bob/copy")
    assert code == 4  # alice may not push into bob's namespace
    # the first request there (as in ocync sync: is the tag already in place?) is refused
    one_error(err, f"manifest {host}/bob/copy:1.0", "HTTP 403")


def test_secrets_never_reach_the_terminal(tmp_path: Path, registry: str) -> None:
    """Wrong and right passwords, from a docker config and from a config file, with -vv and
    --json: neither the password nor any bearer token shows up anywhere."""
    host = registry
    env = dict(os.environ, DOCKER_CONFIG=str(docker_config(tmp_path / "bad", host, WRONG).parent))
    bad = subprocess.run([*OCYNC, "copy", "-vv", f"{host}/alice/app:1.0", f"{host}/alice/copy"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 4, bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith(f"ocync: error: authentication to {host} failed")

    good = docker_config(tmp_path / "good", host, PAT)
    ok = subprocess.run([*OCYNC, "copy", "-vv", "--json", "--authfile", str(good), f"{host}/alice/app:1.0",
                         f"{host}/alice/copy:1.0"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["destination"] == f"{host}/alice/copy:1.0"
    assert "HTTP Request: GET" in ok.stderr  # -vv really logged the requests

    config = tmp_path / "ocync.yaml"
    config.write_text(f"registries:\n  r: {{url: '{host}', token: '${{TOKEN}}'}}\n"
                      "mappings:\n  - {from: alice/app, to: alice/other, source: r, targets: [r]}\n")
    env = dict(os.environ, TOKEN=PAT)
    tags = subprocess.run([*OCYNC, "tags", "-vv", "--json", "-c", str(config), f"{host}/alice/app"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert tags.returncode == 0 and json.loads(tags.stdout)["tags"] == ["1.0"], tags.stderr
    expand = subprocess.run([*OCYNC, "expand", str(config), "--json"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert expand.returncode == 0 and json.loads(expand.stdout)["registries"]["r"]["token"] == "${TOKEN}"

    for result in (bad, ok, tags, expand):
        text = result.stdout + result.stderr
        assert PAT not in text and WRONG not in text
        assert "Bearer " not in text and "Authorization" not in text
        assert "Traceback" not in text


@pytest.mark.parametrize("secret", [pytest.param(PAT + "\r", id="crlf-token-file"),
                                    pytest.param(SPLIT_SECRET, id="embedded-newline")])
@pytest.mark.parametrize("field", ["token", "password"])
def test_a_config_credential_with_a_control_character_is_refused_unseen(
    tmp_path: Path, registry: str, secret: str, field: str
) -> None:
    """A token file saved with CRLF (or holding two lines) read into ${SECRET}: every command
    that resolves the config stops with exit 3 naming the field, and shows no part of it."""
    auth = "token: '${SECRET}'" if field == "token" else "credentials: {username: alice, password: '${SECRET}'}"
    located = "registries.r.token" if field == "token" else "registries.r.credentials.password"
    config = tmp_path / "ocync.yaml"
    config.write_text(f"global: {{cache_dir: {tmp_path / 'cache'}}}\nregistries:\n  r: {{url: '{registry}', {auth}}}\n"
                      "mappings:\n  - {from: alice/app, to: alice/other, source: r, targets: [r]}\n")
    expected = f"ocync: error: {config}:3: {located}: {CONTROL_CHARACTER}"
    commands = [["sync"], ["sync", "--dry-run"], ["sync", "--json"], ["auth", "check"]]
    if field == "password":
        commands = [["sync", "--dry-run", "--json"], ["auth", "check", "--json"]]
    for command in commands:
        for verbose in ([], ["-vv"]):
            argv = [*command, *verbose, "-c", str(config)]
            result = subprocess.run([*OCYNC, *argv], capture_output=True, text=True, timeout=60,
                                    env=dict(os.environ, SECRET=secret))
            assert result.returncode == 3, (argv, result.stdout, result.stderr)
            assert result.stderr.splitlines() == [expected], (argv, result.stderr)
            if "--json" in command and command[0] == "sync":
                assert json.loads(result.stdout)["errors"] == [expected.removeprefix("ocync: error: ")]
            for part in secret_parts(secret):
                assert part not in result.stdout and part not in result.stderr, (argv, part)


# -- the terminal: closed stdout, Ctrl-C ----------------------------------------------------------


def test_closed_stdout_is_one_line_not_a_traceback() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `ocync ... | head -1` once head has exited
    try:
        result = subprocess.run([*OCYNC, "schema"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert result.returncode == 2
    assert result.stderr == "ocync: error: the output was closed before everything was written (broken pipe)\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_while_a_registry_hangs(odd: dict[str, OddServer], signum: signal.Signals) -> None:
    """An interrupt that left the copy undone: exit 1 and one line (SIGTERM as SIGINT)."""
    server = odd["hang"]
    server.accepted.clear()
    proc = subprocess.Popen([*OCYNC, "copy", f"{server.host}/a/b:1", "127.0.0.1:1/c/d"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.accepted.wait(30), "ocync never reached the registry"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = f"ocync: interrupted by {signum.name} before the command finished; its work is undone\n"
    assert (proc.returncode, out, err) == (1, "", line)


def _interrupt_when_accepted(server: OddServer, argv: list[str], signum: signal.Signals) -> tuple[int, str, str]:
    """Run ``ocync ARGV``, send ``signum`` once the hanging registry has its first request."""
    server.accepted.clear()
    proc = subprocess.Popen([*OCYNC, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.accepted.wait(30), "ocync never reached the registry"
        assert proc.poll() is None, "ocync ended before the signal"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err
    return proc.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["analyze", "auth check", "tags"])
def test_interrupted_commands_exit_1_with_one_line(
    odd: dict[str, OddServer], tmp_path: Path, command: str, signum: signal.Signals
) -> None:
    """Every command cut short by SIGINT or SIGTERM: exit 1, one line saying so, nothing else."""
    server = odd["hang"]
    config = tmp_path / "ocync.yaml"
    config.write_text(f"registries:\n  h: {{url: '{server.host}'}}\n"
                      "mappings:\n  - {from: a/b, to: m/b, source: h, targets: [h]}\n")
    argv = [f"{server.host}/a/b"] if command == "tags" else ["-c", str(config)]
    code, out, err = _interrupt_when_accepted(server, [*command.split(), *argv], signum)
    line = f"ocync: interrupted by {signum.name} before the command finished; its work is undone\n"
    assert (code, out, err) == (1, "", line)


def test_interrupted_copy_json_is_a_json_document(odd: dict[str, OddServer]) -> None:
    server = odd["hang"]
    code, out, err = _interrupt_when_accepted(
        server, ["copy", "--json", f"{server.host}/a/b:1", "127.0.0.1:1/c/d"], signal.SIGTERM
    )
    doc = json.loads(out)
    assert code == 1 and doc["exit_code"] == 1 and doc["interrupted"] is True and doc["ok"] is False
    assert doc["errors"] == ["interrupted by SIGTERM before the command finished; its work is undone"]
    assert err == "ocync: " + doc["errors"][0] + "\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sync_interrupted_before_discovery_counts_every_mapping_undone(
    odd: dict[str, OddServer], tmp_path: Path, signum: signal.Signals
) -> None:
    """A signal while the first registry check hangs: nothing was listed, so every mapping is
    undone (exit 1), said in the summary, in --json and in one line on stderr."""
    server = odd["hang"]
    config = tmp_path / "ocync.yaml"
    config.write_text(f"global: {{cache_dir: '{tmp_path / 'cache'}'}}\n"
                      f"registries:\n  h: {{url: '{server.host}'}}\n"
                      "mappings:\n  - {from: a/b, to: m/b, source: h, targets: [h]}\n"
                      "  - {from: a/c, to: m/c, source: h, targets: [h]}\n")
    code, out, err = _interrupt_when_accepted(server, ["sync", "-c", str(config)], signum)
    assert code == 1, err
    assert "interrupted, 2 left undone (2 mapping(s) whose tags were never listed)" in out, out
    assert err.splitlines()[-1] == "ocync: interrupted: 2 left undone", err
    code, out, err = _interrupt_when_accepted(server, ["sync", "-c", str(config), "--json"], signum)
    summary = json.loads(out)["summary"]
    assert code == 1 and json.loads(out)["exit_code"] == 1, err
    assert summary["interrupted"] is True and summary["undone"] == 2
    assert summary["undone_detail"]["mappings_not_listed"] == 2


# -- the one place errors become lines -------------------------------------------------------------


def test_errors_from_a_nursery_are_unwrapped(capsys: pytest.CaptureFixture[str]) -> None:
    group = ExceptionGroup("nursery", [
        NotFound("manifest r/a:1: HTTP 404 (not found)"),
        ExceptionGroup("inner", [Unauthorized("r: HTTP 401"), NotFound("manifest r/a:1: HTTP 404 (not found)")]),
        TransportError("r: connection refused (GET /v2/)"),
    ])
    assert _report(group) == 4  # the most severe exit code wins
    assert capsys.readouterr().err.splitlines() == [
        "ocync: error: manifest r/a:1: HTTP 404 (not found)",
        "ocync: error: r: HTTP 401",
        "ocync: error: r: connection refused (GET /v2/)",
    ]
    interrupted = "ocync: interrupted by SIGINT before the command finished; its work is undone\n"
    assert _report(BaseExceptionGroup("x", [KeyboardInterrupt()])) == 1
    assert capsys.readouterr().err == interrupted
    assert _report(BaseExceptionGroup("x", [NotFound("gone"), KeyboardInterrupt()])) == 1
    assert capsys.readouterr().err == interrupted
    assert _report(ExceptionGroup("x", [NotFound("gone"), BrokenPipeError(32, "Broken pipe")])) == 2
    assert "broken pipe" in capsys.readouterr().err


def test_a_bug_is_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCYNC_TRACEBACK", raising=False)
    assert _report(ValueError("boom\nsecond line")) == 2
    err = capsys.readouterr().err
    assert err.startswith("ocync: internal error: ValueError: boom (a bug: please report it;")
    assert err.count("\n") == 1 and "Traceback" not in err
