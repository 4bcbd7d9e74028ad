"""The docker provisioner against a stand-in of the Docker Engine API: the exact requests."""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.provisioning.base import TenantSpec
from control_plane.provisioning.docker import DockerProvisioner
from control_plane.settings import ControlPlaneSettings
from tests.control_plane.standins.docker_engine import DockerStandIn

SPEC = TenantSpec(id="t0123456789ab", name="Acme", master_key="bWFzdGVyLWtleQ==", webhook_secret="hooks-secret",
                  graph_api_base="http://graph.test", graph_api_version="v25.0")


@pytest.fixture
def engine() -> Iterator[DockerStandIn]:
    standin = DockerStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def docker(engine: DockerStandIn, tmp_path: Path) -> DockerProvisioner:
    settings = ControlPlaneSettings(data_dir=tmp_path, provisioner="docker", docker_url=engine.url,
                                    appliance_image="registry.test/aat-appliance:1.2", tenant_memory_mb=384,
                                    tenant_cpu=0.5, docker_network="aat-net")
    return DockerProvisioner(settings, ready_timeout=5)


def test_provision_creates_network_volume_and_a_limited_labelled_container(
        engine: DockerStandIn, docker: DockerProvisioner) -> None:
    endpoint = asyncio.run(docker.provision(SPEC))
    assert endpoint.url == "http://aat-t0123456789ab:8000"
    assert engine.calls("POST", "/networks/create")[0].json["Name"] == "aat-net"
    volume = engine.calls("POST", "/volumes/create")[0].json
    assert volume["Name"] == "aat-t0123456789ab-data"
    assert volume["Labels"]["org.aatsystems.tenant"] == "t0123456789ab"
    (create,) = engine.calls("POST", "/containers/create")
    assert create.query["name"] == ["aat-t0123456789ab"]
    config = create.json
    assert config["Image"] == "registry.test/aat-appliance:1.2" and config["Cmd"] == ["serve"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["AAT_MASTER_KEY"] == SPEC.master_key and env["AAT_META_APP_SECRET"] == "hooks-secret"
    assert env["AAT_DATA_DIR"] == "/data" and env["AAT_GRAPH_API_BASE"] == "http://graph.test"
    assert config["Labels"] == {"org.aatsystems.tenant": "t0123456789ab", "org.aatsystems.role": "appliance",
                                "org.aatsystems.managed-by": "aat-control-plane"}
    assert config["User"] == "10001:10001"
    assert "readyz" in " ".join(config["Healthcheck"]["Test"])
    host = config["HostConfig"]
    assert host["Memory"] == 384 * 1024 * 1024 and host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 256
    assert host["Binds"] == ["aat-t0123456789ab-data:/data:rw"]
    assert host["NetworkMode"] == "aat-net" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert "PortBindings" not in host or not host["PortBindings"]
    assert engine.calls("POST", "/start")


def test_provisioning_twice_creates_nothing_twice(engine: DockerStandIn, docker: DockerProvisioner) -> None:
    asyncio.run(docker.provision(SPEC))
    asyncio.run(docker.provision(SPEC))
    assert len(engine.calls("POST", "/containers/create")) == 1
    assert len(engine.calls("POST", "/volumes/create")) == 1


def test_stop_keeps_container_and_volume(engine: DockerStandIn, docker: DockerProvisioner) -> None:
    asyncio.run(docker.provision(SPEC))
    asyncio.run(docker.stop(SPEC.id))
    assert engine.calls("POST", "/stop")
    assert engine.by_name("aat-t0123456789ab") is not None and "aat-t0123456789ab-data" in engine.volumes


def test_exec_runs_the_appliance_cli_in_the_container(engine: DockerStandIn, docker: DockerProvisioner) -> None:
    engine.exec_answer = lambda name, cmd: (0, b"aat_token123\n", b"token created\n")
    asyncio.run(docker.provision(SPEC))
    result = asyncio.run(docker.exec(SPEC, ["aat-appliance", "tokens", "create", "--name", "x"]))
    assert (result.exit_code, result.last_line) == (0, "aat_token123")
    exec_call = engine.calls("POST", "/exec")[0]
    container_id = exec_call.path.split("/")[3]
    assert engine.containers[container_id]["name"] == "aat-t0123456789ab"
    assert exec_call.json["Cmd"] == ["aat-appliance", "tokens", "create", "--name", "x"]


def test_stdin_reaches_the_command_through_the_environment(engine: DockerStandIn, docker: DockerProvisioner) -> None:
    asyncio.run(docker.provision(SPEC))
    asyncio.run(docker.exec(SPEC, ["aat-appliance", "export", "--out", "/data/x", "--passphrase-stdin"], b"secret pass"))
    config = engine.calls("POST", "/exec")[0].json
    assert config["Cmd"][:3] == ["sh", "-c", 'printf %s "$AAT_STDIN" | "$@"']
    assert config["Cmd"][4:] == ["aat-appliance", "export", "--out", "/data/x", "--passphrase-stdin"]
    assert "AAT_STDIN=secret pass" in config["Env"]


def test_export_copies_the_file_out_and_removes_it(engine: DockerStandIn, docker: DockerProvisioner,
                                                    tmp_path: Path) -> None:
    asyncio.run(docker.provision(SPEC))
    out = tmp_path / "t.aatx"
    asyncio.run(docker.export(SPEC, out, "a long passphrase"))
    inside = engine.calls("GET", "/archive")[0].query["path"][0]
    assert inside.startswith("/data/.export-") and out.read_bytes() == b"exported " + inside.encode()
    execs = [r for r in engine.calls("POST", "/exec") if r.path.endswith("/exec")]
    assert execs[-1].json["Cmd"] == ["rm", "-f", inside]


def test_teardown_removes_the_container_shreds_the_data_then_removes_the_volume(
        engine: DockerStandIn, docker: DockerProvisioner) -> None:
    asyncio.run(docker.provision(SPEC))
    asyncio.run(docker.teardown(SPEC.id))
    creates = engine.calls("POST", "/containers/create")
    destroy = creates[-1].json
    assert destroy["Cmd"] == ["destroy", "--yes"]
    assert destroy["HostConfig"]["Binds"] == ["aat-t0123456789ab-data:/data:rw"]
    assert destroy["HostConfig"]["NetworkMode"] == "none"
    order = [(r.method, r.path.rsplit("/", 1)[-1]) for r in engine.requests
             if r.method in ("DELETE", "POST") and ("/containers/" in r.path or "/volumes/" in r.path)]
    assert order.index(("POST", "wait")) < order.index(("DELETE", "aat-t0123456789ab-data"))
    assert not engine.containers and not engine.volumes
    asyncio.run(docker.teardown(SPEC.id))  # idempotent


def test_restore_imports_into_a_fresh_volume_with_a_one_off_container(engine: DockerStandIn, docker: DockerProvisioner,
                                                                      tmp_path: Path) -> None:
    source = tmp_path / "in.aatx"
    source.write_bytes(b"export bytes")
    asyncio.run(docker.restore(SPEC, source, "a long passphrase"))
    create = engine.calls("POST", "/containers/create")[0].json
    assert create["Entrypoint"] == ["sh", "-c"] and "aat-appliance import /tmp/import.aatx" in create["Cmd"][0]
    assert "AAT_STDIN=a long passphrase" in create["Env"]
    put = engine.calls("PUT", "/archive")[0]
    assert put.query["path"] == ["/tmp"]
    assert not engine.containers  # removed after it ran
