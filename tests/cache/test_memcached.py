"""MemcachedCache against real and misbehaving servers: what aiomcache alone gets wrong."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator

import pytest

from shop.cache import PRODUCTS, InProcessCache, Lookup, MemcachedCache, stamped, unstamp
from shop.cache import memcached as memcached_module
from shop.cache.base import initial_version, make_key, version_key
from tests.cache.conftest import Partition, fake_memcached, never_answers
from tests.conftest import memcached_url
from tests.support.servers import Memcached


def connect(url: str, **kwargs: float) -> MemcachedCache:
    host, _, port = url.rpartition(":")
    return MemcachedCache(host, int(port), timeout=kwargs.pop("timeout", 0.05), **kwargs)  # type: ignore[arg-type]


async def test_a_reply_arriving_after_the_timeout_is_never_read_as_another_answer() -> None:
    values = {b"k1": b"one", b"k2": b"two"}
    commands = 0

    async def slow_first_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal commands
        while line := await reader.readline():
            commands += 1
            if commands == 1:
                await asyncio.sleep(0.2)  # past the client's timeout
            reply = b"".join(
                b"VALUE %s 0 %d\r\n%s\r\n" % (key, len(values[key]), values[key])
                for key in line.split()[1:]
                if key in values
            )
            writer.write(reply + b"END\r\n")
            await writer.drain()

    async with fake_memcached(slow_first_reply) as port:
        cache = MemcachedCache("127.0.0.1", port, timeout=0.05, pool_size=1, circuit_seconds=0)
        assert await cache.get("k1") is None  # timed out: a miss
        await asyncio.sleep(0.3)  # the late reply to k1 has arrived by now

        assert await cache.get("k2") == b"two"
        assert await cache.get("k1") == b"one"
        await cache.close()


def test_memcached_hanging_up_mid_command_fails_the_call_instead_of_spinning() -> None:
    # aiomcache's reply loop spins without yielding at EOF; the event loop
    # would freeze, so the scenario runs in a thread we can give up on.
    outcome: list[object] = []

    async def scenario() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.close()

        async with fake_memcached(hang_up) as port:
            cache = MemcachedCache("127.0.0.1", port, timeout=1.0)
            await cache.set("k", b"v", 60)
            outcome.append(cache.stats.errors)
            await cache.close()

    thread = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    thread.start()
    thread.join(timeout=5)

    assert not thread.is_alive(), "the event loop is spinning on a closed connection"
    assert outcome == [1]


async def test_bump_creates_a_missing_counter_without_counting_an_error(
    memcached: Memcached | str,
) -> None:
    cache = connect(memcached_url(memcached))
    assert await cache.flush()

    await cache.bump("fresh_namespace")

    assert await cache.version("fresh_namespace") > 0
    assert cache.stats.errors == 0
    assert cache.healthy
    await cache.close()


async def test_every_bump_gives_a_new_version(memcached: Memcached | str) -> None:
    cache = connect(memcached_url(memcached))
    seen = {await cache.version(PRODUCTS)}
    for _ in range(3):
        await cache.bump(PRODUCTS)
        seen.add(await cache.version(PRODUCTS))

    assert len(seen) == 4
    await cache.close()


@pytest.fixture
async def two_processes(
    memcached: Memcached | str,
) -> AsyncIterator[tuple[MemcachedCache, MemcachedCache]]:
    """Two caches on one memcached, as two API processes have them."""
    cache, other = connect(memcached_url(memcached)), connect(memcached_url(memcached))
    yield cache, other
    await cache.close()
    await other.close()


async def test_bumps_of_one_turn_share_one_incr_and_each_waits_for_it(
    two_processes: tuple[MemcachedCache, MemcachedCache],
) -> None:
    cache, other = two_processes
    before = await other.version(PRODUCTS)
    seen_on_return: list[int] = []

    async def commit_then_bump() -> None:
        await cache.bump(PRODUCTS)
        seen_on_return.append(await other.version(PRODUCTS))

    await asyncio.gather(*(commit_then_bump() for _ in range(10)))

    assert await other.version(PRODUCTS) == before + 1  # one incr for the ten
    assert seen_on_return == [before + 1] * 10  # none returned before the incr landed
    assert cache.stats.bumps == 10
    await cache.bump(PRODUCTS)  # a later turn sends its own
    assert await other.version(PRODUCTS) == before + 2


async def test_get_and_lookup_is_one_round_trip_and_follows_a_moved_version(
    two_processes: tuple[MemcachedCache, MemcachedCache],
) -> None:
    cache, other = two_processes
    await cache.set("user_1", b"snapshot", 60)
    first = await cache.lookup(PRODUCTS, "q")  # learns the version
    assert first.key is not None
    await cache.set(first.key, b"body", 60)
    calls = cache.stats.calls

    raw, found = await cache.get_and_lookup("user_1", PRODUCTS, "q")

    assert (raw, found) == (b"snapshot", first._replace(value=b"body"))
    assert cache.stats.calls - calls == 1
    await other.bump(PRODUCTS)
    raw, found = await cache.get_and_lookup("user_1", PRODUCTS, "q")
    assert raw == b"snapshot"
    assert found.value is None and found.key not in (None, first.key)  # never the old entry


async def test_a_combined_read_serves_nothing_stale_while_a_bump_is_pending(
    memcached: Memcached | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hold the background retry: here only the read itself can deliver the bump.
    monkeypatch.setattr(memcached_module, "_RETRY_EVERY", 60.0)
    partition = Partition(int(memcached_url(memcached).rpartition(":")[2]))
    await partition.restore()
    cache = MemcachedCache("127.0.0.1", partition.port, timeout=0.5, circuit_seconds=0)
    namespace = f"pending_{partition.port}"
    await cache.set("user_1", b"snapshot", 60)
    old = await cache.lookup(namespace, "q")  # the version is now known: the one-get path
    assert old.key is not None
    await cache.set(old.key, b"old body", 60)

    await partition.cut()
    await cache.bump(namespace)  # a write committed; memcached keeps the old counter and entry
    await partition.restore()
    raw, found = await cache.get_and_lookup("user_1", namespace, "q")

    assert raw == b"snapshot"
    assert found.value is None and found.key != old.key  # never the entry the write replaced
    await cache.close()
    await partition.cut()


async def test_a_bump_pending_while_the_circuit_is_open_is_kept_and_delivered_after(
    memcached: Memcached | str,
) -> None:
    partition = Partition(int(memcached_url(memcached).rpartition(":")[2]))
    await partition.restore()
    cache = MemcachedCache("127.0.0.1", partition.port, timeout=0.5, circuit_seconds=0.5)
    namespace = f"open_{partition.port}"
    old = await cache.lookup(namespace, "q")
    assert old.key is not None
    await cache.set(old.key, b"old body", 60)

    await partition.cut()
    await cache.bump(namespace)  # cannot be delivered: pending, and the circuit opens
    assert await cache.lookup(namespace, "q") == Lookup(None, None)  # a read meanwhile: a miss
    await partition.restore()
    await asyncio.sleep(1.0)  # the circuit half-opens; the retry delivers the bump
    found = await cache.lookup(namespace, "q")

    assert found.value is None and found.key != old.key
    await cache.close()
    await partition.cut()


async def test_a_combined_read_never_serves_a_user_snapshot_whose_delete_is_pending(
    memcached: Memcached | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memcached_module, "_RETRY_EVERY", 60.0)  # only the read can deliver it
    partition = Partition(int(memcached_url(memcached).rpartition(":")[2]))
    await partition.restore()
    cache = MemcachedCache("127.0.0.1", partition.port, timeout=0.5, circuit_seconds=0)
    key = f"user_{partition.port}"
    await cache.set(key, b"still staff", 60)
    assert (await cache.lookup(PRODUCTS, "q")).key is not None  # the one-get path from here

    await partition.cut()
    await cache.delete(key)  # the user was demoted; the snapshot's delete cannot get through
    assert await cache.get(key) is None  # a read meanwhile: a miss, and the delete kept
    await partition.restore()
    raw, _ = await cache.get_and_lookup(key, PRODUCTS, "q")

    assert raw is None  # the caller is loaded from PostgreSQL, not from the old snapshot
    other = connect(memcached_url(memcached), timeout=2.0)
    assert await other.get(key) is None  # the delete reached memcached: gone for everyone
    await other.close()
    await cache.close()
    await partition.cut()


@pytest.mark.parametrize(
    ("add_reply", "sent"),
    [
        (b"STORED", [b"incr", b"add"]),  # the counter we created is the bump
        (b"NOT_STORED", [b"incr", b"add", b"incr"]),  # another instance's: bump theirs
    ],
)
async def test_a_bump_finding_no_counter_is_delivered_once(
    add_reply: bytes, sent: list[bytes]
) -> None:
    commands: list[bytes] = []

    async def no_counter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            commands.append(line.split()[0])
            if commands[-1] == b"add":
                await reader.readline()  # the value
                writer.write(add_reply + b"\r\n")
            elif commands[-1] == b"incr":
                writer.write(b"NOT_FOUND\r\n" if commands.count(b"incr") == 1 else b"42\r\n")
            else:
                writer.write(b"END\r\n")
            await writer.drain()

    async with fake_memcached(no_counter) as port:
        cache = MemcachedCache("127.0.0.1", port, timeout=0.5)
        await cache.bump(PRODUCTS)
        await asyncio.sleep(0.6)  # a bump left pending would be retried every 0.25 s

        assert commands == sent  # delivered, and not sent again
        await cache.close()


async def test_a_bump_is_sent_even_while_the_servers_circuit_is_open(
    memcached: Memcached | str,
) -> None:
    partition = Partition(int(memcached_url(memcached).rpartition(":")[2]))
    await partition.restore()
    cache = MemcachedCache("127.0.0.1", partition.port, timeout=0.5, circuit_seconds=60)
    other = connect(memcached_url(memcached), timeout=2.0)  # a busy machine is no outage
    namespace = f"forced_{partition.port}"
    before = await other.version(namespace)
    await partition.cut()
    assert await cache.get("k") is None  # fails: the circuit opens for a minute
    await partition.restore()  # memcached is reachable again; the circuit does not know yet

    await cache.bump(namespace)

    assert await other.version(namespace) == before + 1  # other instances stop serving at once
    await cache.close()
    await other.close()
    await partition.cut()


async def test_a_lost_counter_restarts_above_every_version_this_instance_saw(
    memcached: Memcached | str,
) -> None:
    cache = connect(memcached_url(memcached), timeout=2.0)
    namespace = f"ahead_{id(cache)}"
    # The counter was created by an instance whose clock ran ahead of ours.
    await cache.set(version_key(namespace), str(2 * initial_version()).encode(), 60)
    for body in (b"before the bump", b"after the bump"):
        found = await cache.lookup(namespace, "q")
        assert found.key is not None
        await cache.set(found.key, body, 60)
        await cache.bump(namespace)

    await cache.delete(version_key(namespace))  # evicted, or its server restarted
    found = await cache.lookup(namespace, "q")

    assert found.key is not None and found.value is None  # nothing cached under an old version
    await cache.close()


async def test_a_bump_whose_new_counter_could_not_be_stored_is_retried() -> None:
    commands: list[bytes] = []

    async def add_times_out(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            commands.append(line.split()[0])
            if commands[-1] == b"add":
                await reader.readline()  # the value; no answer: the add times out
                continue
            if commands[-1] == b"incr":
                writer.write(b"NOT_FOUND\r\n" if commands.count(b"incr") == 1 else b"42\r\n")
            else:
                writer.write(b"END\r\n")
            await writer.drain()

    async with fake_memcached(add_times_out) as port:
        cache = MemcachedCache("127.0.0.1", port, timeout=0.2, circuit_seconds=0)
        await cache.bump(PRODUCTS)  # no counter, and creating one failed: not delivered
        await asyncio.sleep(0.8)

        assert commands[:2] == [b"incr", b"add"]
        assert commands.count(b"incr") >= 2  # the bump stayed pending and was sent again
        await cache.close()


async def test_a_bump_cut_short_stays_pending_and_nothing_older_is_served() -> None:
    stored = {b"version_products_list": b"7", b"products_list_v7_q": b"old body"}

    async def incr_never_answered(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while line := await reader.readline():
            command, *keys = line.split()
            if command != b"get":
                continue  # the incr: no answer
            found = [(k, stored[k]) for k in keys if k in stored]
            reply = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(v), v) for k, v in found)
            writer.write(reply + b"END\r\n")
            await writer.drain()

    async with fake_memcached(incr_never_answered) as port:
        cache = MemcachedCache("127.0.0.1", port, timeout=0.3, circuit_seconds=0)
        assert (await cache.lookup(PRODUCTS, "q")).value == b"old body"
        bump = asyncio.create_task(cache.bump(PRODUCTS))  # a write committed...
        await asyncio.sleep(0.05)
        bump.cancel()  # ...and its request was cut short while the incr was on its way
        with contextlib.suppress(asyncio.CancelledError):
            await bump

        assert (await cache.lookup(PRODUCTS, "q")).value is None
        await cache.close()


async def test_a_counter_another_instance_created_first_is_the_one_used() -> None:
    stored: dict[bytes, bytes] = {}

    async def created_meanwhile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            command, *keys = line.split()
            if command == b"add":
                await reader.readline()  # our value, refused:
                stored[keys[0]] = b"42"  # another instance's counter got there first
                writer.write(b"NOT_STORED\r\n")
            else:
                found = [(k, stored[k]) for k in keys if k in stored]
                reply = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(v), v) for k, v in found)
                writer.write(reply + b"END\r\n")
            await writer.drain()

    async with fake_memcached(created_meanwhile) as port:
        cache = MemcachedCache("127.0.0.1", port, timeout=0.5)
        found = await cache.lookup(PRODUCTS, "q")

        assert found.key == make_key(PRODUCTS, 42, "q")  # cached under the counter all share
        await cache.close()


async def test_two_instances_creating_a_counter_at_once_both_cache_under_the_winners_version(
    two_processes: tuple[MemcachedCache, MemcachedCache],
) -> None:
    namespace = f"new_{id(two_processes)}"  # no counter yet: both find none, both `add` one

    one, other = await asyncio.gather(*(cache.lookup(namespace, "q") for cache in two_processes))

    assert one.key is not None and one.key == other.key


async def test_lookup_after_another_instance_bumped_reads_the_new_version(
    memcached: Memcached | str,
) -> None:
    one, other = connect(memcached_url(memcached)), connect(memcached_url(memcached))
    stale = await one.lookup(PRODUCTS, "q")
    assert stale.key is not None
    await one.set(stale.key, b"old", 60)

    await other.bump(PRODUCTS)

    fresh = await one.lookup(PRODUCTS, "q")
    assert fresh.value is None
    assert fresh.key != stale.key
    await one.close()
    await other.close()


async def test_an_open_circuit_skips_memcached_instead_of_waiting_each_time() -> None:
    async with fake_memcached(never_answers) as port:
        cache = MemcachedCache("127.0.0.1", port, timeout=0.05, circuit_seconds=60)
        for _ in range(10):
            assert await cache.get("k") is None

        assert cache.stats.calls == 1  # one timeout, then the circuit is open
        assert cache.stats.skipped == 9
        assert not cache.healthy
        await cache.close()


async def test_the_unavailability_warning_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    async with fake_memcached(never_answers) as port:
        cache = MemcachedCache("127.0.0.1", port, timeout=0.02, circuit_seconds=0)
        with caplog.at_level(logging.WARNING, logger="shop.cache"):
            for _ in range(10):
                await cache.get("k")

        assert cache.stats.errors == 10
        warnings = [
            r for r in caplog.records if r.name == "shop.cache" and r.levelno == logging.WARNING
        ]
        assert len(warnings) == 1
        await cache.close()


async def test_a_bump_that_failed_is_delivered_once_memcached_answers() -> None:
    server = Memcached().start()
    try:
        cache = connect(server.url, circuit_seconds=0)
        before = await cache.version(PRODUCTS)
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)  # memcached hangs, keeping its data

        await cache.bump(PRODUCTS)
        assert (await cache.lookup(PRODUCTS, "q")).key is None  # unknown version: do not cache
        assert await cache.version(PRODUCTS) == 0  # "unknown", as the Cache interface says

        server.process.send_signal(signal.SIGCONT)
        # Greater, not "+ 1": incr commands that timed out were still queued in
        # the socket and memcached applies them on waking. Extra bumps only
        # invalidate more; what matters is that the old version is gone.
        assert await cache.version(PRODUCTS) > before
        await cache.close()
    finally:
        server.process and server.process.send_signal(signal.SIGCONT)
        server.stop()


async def test_in_process_cache_versions_and_lookup() -> None:
    cache = InProcessCache()
    first = await cache.lookup(PRODUCTS, "q")
    assert first.key is not None and first.value is None
    await cache.set(first.key, b"body", 60)
    assert (await cache.lookup(PRODUCTS, "q")).value == b"body"

    await cache.bump(PRODUCTS)

    assert (await cache.lookup(PRODUCTS, "q")).value is None


@pytest.mark.parametrize("backend", ["memcached", "in-process"])
async def test_put_newer_keeps_the_highest_stamp_whatever_order_puts_arrive_in(
    memcached: Memcached | str, backend: str
) -> None:
    cache = connect(memcached_url(memcached)) if backend == "memcached" else InProcessCache()
    await cache.put_newer({"stock_1": (7, b"3")}, 60)
    await cache.put_newer({"stock_1": (6, b"4"), "stock_2": (1, b"9")}, 60)  # arrives late
    assert await cache.get_many("stock_1", "stock_2") == [stamped(7, b"3"), stamped(1, b"9")]

    await cache.put_newer({"stock_1": (8, b"2")}, 60)
    assert unstamp(await cache.get("stock_1")) == (8, b"2")
    await cache.close()


async def test_concurrent_put_newer_of_one_key_leaves_the_newest(
    memcached: Memcached | str,
) -> None:
    """Writers racing on one key (adds and compare-and-sets that lose) end on the top stamp."""
    caches = [connect(memcached_url(memcached), timeout=1.0) for _ in range(4)]
    for order, key in ((range(1, 41), "stock_race_up"), (range(40, 0, -1), "stock_race_down")):
        # Rising: the first add wins and the later, newer puts lose races and retry.
        await asyncio.gather(
            *(
                caches[n % 4].put_newer({key: (stamp, b"%d" % stamp)}, 60)
                for n, stamp in enumerate(order)
            )
        )
        for _ in range(100):  # a put that lost every round waits (read as a miss) and is retried
            if not any(cache.pending.puts for cache in caches):
                break
            await asyncio.sleep(0.05)
        assert unstamp(await caches[0].get(key)) == (40, b"40")
    for cache in caches:
        await cache.close()


async def test_a_put_that_failed_reads_as_a_miss_until_it_is_delivered() -> None:
    server = Memcached().start()
    try:
        cache = connect(server.url, circuit_seconds=0)
        await cache.put_newer({"stock_1": (1, b"5")}, 60)
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)  # memcached hangs, keeping the old figure

        await cache.put_newer({"stock_1": (2, b"4")}, 60)
        assert await cache.get_many("stock_1") == [None]  # never the old figure
        assert (await cache.lookup(PRODUCTS, "q", ["stock_1"])).more == {"stock_1": None}

        server.process.send_signal(signal.SIGCONT)
        for _ in range(100):  # the retry task delivers it
            if unstamp(await cache.get("stock_1")) == (2, b"4"):
                break
            await asyncio.sleep(0.05)
        assert unstamp(await cache.get("stock_1")) == (2, b"4")
        await cache.close()
    finally:
        server.process and server.process.send_signal(signal.SIGCONT)
        server.stop()


async def test_a_multi_key_get_returns_every_value_whatever_bytes_and_size_it_holds(
    memcached: Memcached | str,
) -> None:
    """The reply is parsed by the lengths memcached gives: values holding the protocol's
    own line endings and END, and values larger than one read, come back exactly."""
    from shop._compat.aiomcache import Client

    host, _, port = memcached_url(memcached).rpartition(":")
    client = Client(host, int(port), pool_size=2)
    values = {
        b"k_tricky": b"VALUE x 0 3\r\nEND\r\n\r\n",
        b"k_big": bytes(range(256)) * 2000,  # 512 KB: several reads
        b"k_empty": b"",
        b"k_plain": b"7:12",
    }
    try:
        for key, value in values.items():
            await client.set(key, value)

        got = await client.get_values(*values, b"k_absent")
        held, tokens = await client.gets_values(*values)

        assert got == values
        assert held == values and set(tokens) == set(values)
        assert all(isinstance(token, int) for token in tokens.values())
    finally:
        await client.close()


async def test_a_newer_put_delivered_supersedes_an_older_one_still_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two writes of one key fail in a row: the newer waits. A still newer one that is
    delivered ends the wait: the key is read again at once, with its figure."""
    monkeypatch.setattr(memcached_module, "_RETRY_EVERY", 60.0)  # no background delivery
    server = Memcached().start()
    try:
        cache = connect(server.url, circuit_seconds=0)
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        await cache.put_newer({"stock_1": (2, b"4")}, 60)
        await cache.put_newer({"stock_1": (3, b"3")}, 60)  # replaces the waiting one
        assert cache.pending.puts["stock_1"][:2] == (3, b"3")
        server.process.send_signal(signal.SIGCONT)

        await cache.put_newer({"stock_1": (4, b"2")}, 60)

        assert "stock_1" not in cache.pending.puts
        assert await cache.get_many("stock_1") == [stamped(4, b"2")]
        await cache.close()
    finally:
        server.process and server.process.send_signal(signal.SIGCONT)
        server.stop()


async def test_a_writers_stock_figure_memcached_missed_is_never_read_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`stock.publish` without ``fill`` is a writer's: undelivered, it keeps the key a
    miss on this instance, so the figure memcached still holds is not served."""
    from shop.catalog import stock

    monkeypatch.setattr(memcached_module, "_RETRY_EVERY", 60.0)  # no background delivery
    server = Memcached().start()
    try:
        cache = connect(server.url, circuit_seconds=0)
        await stock.publish(cache, [stock.Stock(7, 5, 1)], ttl=60)
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        await stock.publish(cache, [stock.Stock(7, 4, 2)], ttl=60)  # an order's figure
        server.process.send_signal(signal.SIGCONT)

        assert await cache.get_many(stock.stock_key(7)) == [None]  # not the old 5
        await cache.close()
    finally:
        server.process and server.process.send_signal(signal.SIGCONT)
        server.stop()
