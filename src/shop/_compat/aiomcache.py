"""aiomcache 0.8, minus three hazards, plus one-command multi-key ``get`` and ``gets``.

Everything here relies on aiomcache internals (``client.acquire``, the
``MemcachePool`` attributes ``_pool``, ``_in_use``, ``_maxsize``, ``_do_close``,
``_create_new_conn``, and the client's ``_pool``, ``_multi_get``,
``_execute_simple_command``, ``_incr_decr``, ``_validate_key``), so
pyproject.toml pins ``aiomcache<0.9`` and ``tests/platform/test_compat_aiomcache.py``
checks that those internals still look the way this module expects.

1. A cancelled call (our timeout, or a client that went away) left its
   connection in the pool with the reply unread; the next command would read
   that reply as its own answer. `CancelSafePool` closes such connections.
2. The pool opened a new connection only when empty, so every request of a
   worker queued behind one socket. `CancelSafePool.acquire` grows to maxsize.
3. At EOF the reply loop spun without yielding (a memcached dying mid-command
   froze the event loop); `Client._execute_simple_command` raises instead.
   ``incr`` of a missing counter raised instead of answering ``None``.
4. A multi-key ``get`` parsed its reply with two awaits per value;
   `Client._values` parses what has arrived in one pass.
"""

from __future__ import annotations

import asyncio
import re

import aiomcache
from aiomcache import constants as mc_const
from aiomcache.client import acquire
from aiomcache.exceptions import ClientException, ValidationException
from aiomcache.pool import Connection, MemcachePool

__all__ = ["WIRE_KEY", "CancelSafePool", "Client"]

WIRE_KEY = re.compile(r"[\x21-\x7e]{1,250}")
"""A key memcached takes: printable ASCII without spaces, at most 250 bytes."""


class CancelSafePool(MemcachePool):
    """aiomcache's pool, minus the half-read-connection hazard (1) and the single socket (2)."""

    def release(self, conn: Connection) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            self._in_use.discard(conn)
            self._do_close(conn)
            return
        super().release(conn)

    async def acquire(self) -> Connection:
        # aiomcache opens a new connection only when the pool is empty: with
        # every connection busy it queues the caller behind them, so all the
        # requests of a worker share one socket and wait for each other's
        # round trips. Grow up to maxsize instead, and only queue once that is reached.
        if self._pool.empty() and self.size() < self._maxsize:
            conn = await self._create_new_conn()
            if conn is not None:
                self._in_use.add(conn)
                return conn
        return await super().acquire()


class Client(aiomcache.Client):
    """aiomcache.Client with the pool above and the protocol fixes (3)."""

    def __init__(self, host: str, port: int, pool_size: int) -> None:
        super().__init__(host, port, pool_size=pool_size, pool_minsize=1)
        self._pool = CancelSafePool(host, port, minsize=1, maxsize=pool_size)

    def _validate_key(self, key: bytes) -> bytes:
        # aiomcache decodes and matches a regex per key; every key here comes from
        # make_key or a fixed format behind a short prefix, so one C-level match.
        if not isinstance(key, bytes) or WIRE_KEY.fullmatch(key.decode("latin-1")) is None:
            raise ValidationException("invalid memcached key", key)
        return key

    @acquire
    async def get_values(self, conn: Connection, *keys: bytes) -> dict[bytes, bytes]:
        """One ``get`` (without CAS, unlike aiomcache's multi_get) of several keys."""
        values, _ = await self._values(conn, b"get ", keys)
        return values

    @acquire
    async def gets_values(
        self, conn: Connection, *keys: bytes
    ) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
        """One ``gets`` of several keys: their values and CAS tokens (aiomcache's
        ``gets`` takes one key)."""
        return await self._values(conn, b"gets ", keys)

    async def _values(
        self, conn: Connection, command: bytes, keys: tuple[bytes, ...]
    ) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
        """Send ``command`` for ``keys`` and parse the reply (4).

        aiomcache's ``_multi_get`` awaits a ``readline`` and a ``readexactly``
        per value: a cached list page with its twenty stock figures cost forty
        awaits and a fifth of the request's CPU. This reads what has arrived
        and walks it by the lengths the ``VALUE`` lines give (a value may hold
        any bytes, ``END\\r\\n`` included), reading more only when a value is
        cut off. Same checks: valid unique keys, no flags, nothing after ``END``.
        """
        if not keys:
            return {}, {}
        for key in keys:
            self._validate_key(key)
        if len(set(keys)) != len(keys):
            raise ClientException("duplicate keys passed to multi_get")
        conn.writer.write(command + b" ".join(keys) + b"\r\n")
        reader = conn.reader
        buffer, at = b"", 0
        values: dict[bytes, bytes] = {}
        tokens: dict[bytes, int] = {}
        while True:
            eol = buffer.find(b"\r\n", at)
            if eol >= 0:
                line = buffer[at:eol]
                if line == b"END":
                    if eol + 2 != len(buffer):
                        raise ClientException("data after END", buffer[eol + 2 :])
                    if len(values) > len(keys):
                        raise ClientException("received too many responses")
                    return values, tokens
                terms = line.split()
                if len(terms) < 4 or terms[0] != b"VALUE":
                    raise ClientException("get failed", line)
                start = eol + 2
                end = start + int(terms[3])
                if end + 2 <= len(buffer):
                    if terms[2] != b"0":
                        raise ClientException("received flags without handler")
                    if terms[1] in values:
                        raise ClientException("duplicate results from server")
                    values[terms[1]] = buffer[start:end]
                    if len(terms) > 4:
                        tokens[terms[1]] = int(terms[4])
                    at = end + 2
                    continue
            chunk = await reader.read(65536)
            if not chunk:  # EOF: the server went away mid-reply
                raise ConnectionResetError("memcached closed the connection mid-reply")
            buffer, at = buffer[at:] + chunk, 0

    async def _execute_simple_command(self, conn: Connection, raw_command: bytes) -> bytes:
        # aiomcache loops on readline() until a line ends with CRLF; at EOF
        # readline() returns b"" without yielding, so a memcached that dies
        # mid-command would spin the event loop forever. readuntil raises.
        conn.writer.write(raw_command)
        await conn.writer.drain()
        line = await conn.reader.readuntil(b"\r\n")
        return line[:-2]

    async def _incr_decr(
        self, conn: Connection, command: bytes, key: bytes, delta: int
    ) -> int | None:
        # aiomcache raises on NOT_FOUND; a missing counter is an answer, not a fault.
        resp = await self._execute_simple_command(conn, b"%s %s %d\r\n" % (command, key, delta))
        if resp == mc_const.NOT_FOUND:
            return None
        if not resp.isdigit():
            raise ClientException(f"memcached {command.decode()} failed", resp)
        return int(resp)
