"""SIGTERM to real processes: the API finishes in-flight requests, the worker its current job."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg

from tests.support.factories import auth_headers, make_product, make_user
from tests.support.live import serve_live


class SlowReceiver:
    """A webhook receiver that holds each request until the test releases it."""

    def __init__(self) -> None:
        self.received = asyncio.Event()
        self.release = asyncio.Event()
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        self.received.set()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_worker_finishes_its_running_job_on_sigterm(
    client, db, settings, processes, env, postgres_url
):
    receiver = SlowReceiver()
    async with serve_live(receiver) as hook:
        worker = processes.worker(
            {**env, "SHIPPED_WEBHOOK_URL": hook.url + "/hook", "WEBHOOK_RETRY_DELAYS": "1,1,1"}
        )
        staff = await make_user(db, is_staff=True)
        product = await make_product(db, stock=3, price=10)
        headers = auth_headers(settings, staff)
        order = await client.post(
            "/api/orders/",
            json={"items": [{"product_id": product.id, "quantity": 1}]},
            headers=headers,
        )
        shipped = await client.patch(
            f"/api/orders/{order.json()['id']}/", json={"status": "shipped"}, headers=headers
        )
        assert shipped.status_code == 200, shipped.text

        await asyncio.wait_for(receiver.received.wait(), timeout=60)
        worker.process.send_signal(15)  # SIGTERM while the webhook job is mid-request
        await asyncio.sleep(1.0)
        still_running = worker.process.poll() is None
        receiver.release.set()
        exit_code = await asyncio.to_thread(worker.process.wait, 60)

    assert still_running, "the worker exited without waiting for its running job"
    assert exit_code == 0, worker.output()
    assert len(receiver.bodies) == 1  # delivered once, not abandoned and resent
    conn = await asyncpg.connect(postgres_url)
    try:
        outcome = await conn.fetchval("SELECT outcome FROM webhook_events")
        jobs = await conn.fetch(
            "SELECT task_name, status::text AS status FROM procrastinate_jobs "
            "WHERE task_name LIKE '%notify_shipped'"
        )
    finally:
        await conn.close()
    assert outcome == "delivered"
    assert [j["status"] for j in jobs] == ["succeeded"]


def _send_headers_then_wait(port: int, body: bytes, sent, resume) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            b"POST /api/auth/login/ HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
        )
        sent.set()
        resume.wait(60)
        sock.sendall(body[10:])
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


async def test_api_finishes_in_flight_requests_on_sigterm(processes, env):
    import threading

    api = processes.api(env)
    port = int(api.url.rsplit(":", 1)[1])
    body = b'{"email":"someone@example.com","password":"not-the-password-1"}'
    sent, resume = threading.Event(), threading.Event()
    in_flight = asyncio.create_task(
        asyncio.to_thread(_send_headers_then_wait, port, body, sent, resume)
    )
    await asyncio.to_thread(sent.wait, 30)
    await asyncio.sleep(0.5)  # the server has the headers: the request is in flight

    api.process.send_signal(15)
    await asyncio.sleep(1.0)
    alive_while_in_flight = api.process.poll() is None
    refused_new = await asyncio.to_thread(_connection_refused, port)
    resume.set()
    reply = await in_flight
    exit_code = await asyncio.to_thread(api.process.wait, 60)

    assert alive_while_in_flight
    assert refused_new  # no new connections once shutting down
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]  # the in-flight request got its answer
    assert b"application/problem+json" in reply
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete (exit status -15)
    assert exit_code in (0, -15), api.output()
    assert "Application shutdown complete" in api.output()


def _connection_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True
