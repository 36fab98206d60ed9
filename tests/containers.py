"""The session's servers as Docker containers of the official images, where an engine runs.

``WORKLETS_TEST_SERVERS``: ``embedded`` (nats-server from the wheel and nx-27017, the default
where no Docker engine answers), ``docker`` (the ``nats`` and ``mongo`` images through
testcontainers) or ``auto`` (docker when an engine answers, else embedded; the default).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from cli.servers import port_open

NATS_IMAGE = "nats:2.14-alpine"  # as in docker-compose.yml
MONGO_IMAGE = "mongo:8.0"
NATS_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nats.conf"


def mode() -> str:
    wanted = os.environ.get("WORKLETS_TEST_SERVERS", "auto")
    if wanted not in ("auto", "docker", "embedded"):
        raise ValueError(f"WORKLETS_TEST_SERVERS={wanted!r}: use auto, docker or embedded")
    if wanted == "auto":
        return "docker" if engine_answers() else "embedded"
    return wanted


def engine_answers() -> bool:
    """Whether a Docker engine answers ``GET /_ping`` on DOCKER_HOST (or the default socket)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").partition(":")
            sock, address = socket.socket(), (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
            return status_line.startswith(b"HTTP/1.") and b" 200 " in status_line + b" "
    except OSError:
        return False


@contextmanager
def docker_servers() -> Iterator[tuple[str, str]]:
    """(nats_url, mongo_url) of fresh nats and mongo containers."""
    from testcontainers.core.container import DockerContainer

    with ExitStack() as stack:
        nats = stack.enter_context(
            DockerContainer(NATS_IMAGE)
            .with_volume_mapping(str(NATS_CONF), "/etc/nats/worklets.conf")
            .with_command("--config /etc/nats/worklets.conf")
            .with_exposed_ports(4222)
        )
        mongo = stack.enter_context(DockerContainer(MONGO_IMAGE).with_exposed_ports(27017))
        urls = []
        for container, port, scheme in ((nats, 4222, "nats"), (mongo, 27017, "mongodb")):
            host, mapped = container.get_container_host_ip(), int(container.get_exposed_port(port))
            deadline = time.monotonic() + 60
            while not port_open(host, mapped):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{scheme} container is not listening on {host}:{mapped}")
                time.sleep(0.1)
            urls.append(f"{scheme}://{host}:{mapped}")
        yield urls[0], urls[1]
