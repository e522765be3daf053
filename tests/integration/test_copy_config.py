"""``ocync copy -c FILE``: a sync config's registry entries (matched by host) supply the
credentials, profile, caps and timeout of SRC and DST; ``ocync auth check`` takes several
configs. Through the real CLI against mocks with token auth."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import trio

from mockregistry import MockOptions, serve_mock
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient

sys.path.insert(0, str(Path(__file__).parent))
from imageseed import make_index, push_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
USER, PAT = "alice", "pat-alice"


def ghcr_options(**kw: object) -> MockOptions:
    base: dict[str, object] = dict(profile="ghcr", auth="token", users={USER: PAT}, public=[], seed=1)
    base.update(kw)
    return MockOptions(**base)  # type: ignore[arg-type]


async def run_cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    # no docker config: every credential must come from the config file
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "no-docker-config"), "PAT": PAT}
    result = await trio.run_process(
        [sys.executable, "-m", "ocync", *args], capture_stdout=True, capture_stderr=True, check=False,
        env=env, cwd=ROOT,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def config_file(path: Path, name: str, host: str, repo: str, *, rate_limit: str | None = None) -> Path:
    extra = f", rate_limit: '{rate_limit}'" if rate_limit else ""
    path.write_text(
        f"global: {{cache_dir: '{path.parent / 'cache'}'}}\n"
        f"registries:\n  {name}: {{url: '{host}', profile: ghcr, "
        f"credentials: {{username: {USER}, password: '${{PAT}}'}}{extra}}}\n"
        f"mappings:\n  - {{from: {repo}, to: {repo}-mirror, source: {name}, targets: [{name}]}}\n"
    )
    return path


async def test_copy_takes_credentials_profile_and_cap_from_the_config(tmp_path: Path) -> None:
    rng = random.Random(31)
    image = make_index(rng, "1.0")
    async with serve_mock(ghcr_options()) as src, serve_mock(ghcr_options(seed=2)) as dst:
        settings = ClientSettings(auth=AuthSettings(kind="basic", username=USER, password=PAT), profile="ghcr")
        async with RegistryClient(src.url, settings) as s:
            digest = await push_image(s, "alice/app", image)
        source, destination = f"{src.host}/alice/app:1.0", f"{dst.host}/alice/mirror"
        # without the config: anonymous, refused by both private registries (exit 4)
        code, out, err = await run_cli(tmp_path, "copy", source, destination)
        assert code == 4, out + err
        config = tmp_path / "ocync.yaml"
        text = config_file(config, "dst", dst.host, "alice/app", rate_limit="6000/1m").read_text()
        src_entry = f"  src: {{url: '{src.host}', profile: ghcr, credentials: {{username: {USER}, password: '${{PAT}}'}}}}\n"
        config.write_text(text.replace("registries:\n", "registries:\n" + src_entry))
        code, out, err = await run_cli(tmp_path, "copy", "-c", str(config), source, destination, "--json")
        assert code == 0, out + err
        doc = json.loads(out)
        assert doc["digest"] == str(digest) and doc["destination"] == f"{dst.host}/alice/mirror:1.0"
        controllers = doc["controllers"]
        assert controllers[dst.host]["profile"] == "ghcr" and USER in controllers[dst.host]["principal"]
        assert controllers[src.host]["profile"] == "ghcr" and USER in controllers[src.host]["principal"]
        assert controllers[dst.host]["controller"]["cap"] is not None  # the config's rate_limit
        # the ghcr profile from the config: one PATCH per uploaded blob
        assert dst.stats()["by_kind"]["upload_patch"] == len(image.all_blobs())
        assert PAT not in out + err
        # the command line still wins over the entry: a profile named there is used
        code, out, err = await run_cli(
            tmp_path, "copy", "-c", str(config), "--dst-profile", "generic", source, f"{dst.host}/alice/other", "--json"
        )
        assert code == 0, out + err
        assert json.loads(out)["controllers"][dst.host]["profile"] == "generic"


async def test_auth_check_takes_several_configs(tmp_path: Path) -> None:
    async with serve_mock(ghcr_options()) as one, serve_mock(ghcr_options(seed=2)) as two:
        first = config_file(tmp_path / "one.yaml", "one", one.host, "alice/app")
        second = config_file(tmp_path / "two.yaml", "two", two.host, "alice/app")
        code, out, err = await run_cli(tmp_path, "auth", "check", "-c", str(first), "-c", str(second), "--json")
        assert code == 0, out + err
        checks = json.loads(out)["checks"]
        assert {c["registry"] for c in checks} == {"one", "two"}
        assert {(c["registry"], c["access"]) for c in checks} == {
            (name, access) for name in ("one", "two") for access in ("reach", "pull", "push")
        }
        # the same file twice: each check listed once
        code, out, err = await run_cli(tmp_path, "auth", "check", "-c", str(first), "-c", str(first), "--json")
        assert code == 0 and len(json.loads(out)["checks"]) == 3, out + err
        # one bad file among good ones: exit 4, the bad registry named
        bad = tmp_path / "bad.yaml"
        bad.write_text(second.read_text().replace("${PAT}", "wrong-pat"))
        code, out, err = await run_cli(tmp_path, "auth", "check", "-c", str(first), "-c", str(bad))
        assert code == 4, out + err
        assert "ok      one" in out and "FAILED  two" in out and "wrong-pat" not in out + err
