"""A lean HTTP/1.1 keep-alive client, so the benchmark measures the platform, not the client."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any


def _request(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _parse_head(head: bytes) -> tuple[int, int]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, length


class SyncClient:
    """One blocking connection; ``post`` returns (status, JSON body)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host = f"{host}:{port}"
        self.headers = {"Content-Type": "application/json", **headers}
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def post(self, path: str, payload: Any) -> tuple[int, Any]:
        self.sock.sendall(_request(self.host, path, self.headers, json.dumps(payload).encode()))
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status, length = _parse_head(head)
        while len(self.buffer) < length:
            self.buffer += self._recv()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, json.loads(body) if body else None

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


class AsyncClient:
    """One asyncio connection; ``post`` returns (status, JSON body)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.addr = (host, port)
        self.host = f"{host}:{port}"
        self.headers = {"Content-Type": "application/json", **headers}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: Any) -> tuple[int, Any]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(*self.addr)
        self.writer.write(_request(self.host, path, self.headers, json.dumps(payload).encode()))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length = _parse_head(head[:-4])
        body = await self.reader.readexactly(length)
        return status, json.loads(body) if body else None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
