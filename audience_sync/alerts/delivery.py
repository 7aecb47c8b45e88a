"""Sending one alert body to every webhook: retried with backoff (stamina) on 5xx, 429 and
transport errors, all receivers at once, and never longer than ``timeout_seconds`` in all:
a receiver still not done by then is given up (recorded ``failed``) and left behind."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import stamina

from audience_sync.alerts.payload import mask
from audience_sync.config import AlertSettings
from audience_sync.errors import FatalDeliveryError, RetriableDeliveryError
from audience_sync.state.statuses import DeliveryStatus

logger = logging.getLogger("audience_sync.alerts")

WAIT_INITIAL_SECONDS = 0.2
WAIT_MAX_SECONDS = 2.0


@dataclass
class Delivery:
    receiver: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    error: str | None = None


def receiver_label(url: str) -> str:
    """Scheme, host and port only: a webhook's path is often its secret (Slack's is)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def deliver_all(
    urls: list[str],
    body: bytes,
    settings: AlertSettings,
    *,
    transport: httpx.BaseTransport | None = None,
) -> list[Delivery]:
    # One client, built before the clock starts, shared by the threads (httpx clients are
    # thread-safe): each thread's first attempt goes out at once. Threads still running at
    # the deadline keep it open; they are daemons, so it is closed when the process ends.
    client = httpx.Client(transport=transport, follow_redirects=False)
    deadline = time.monotonic() + settings.timeout_seconds
    results = [Delivery(receiver_label(url)) for url in urls]
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=_deliver,
            args=(client, url, body, settings, deadline, result, lock),
            name=f"alert-{result.receiver}",
            daemon=True,
        )
        for url, result in zip(urls, results, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if not any(thread.is_alive() for thread in threads):
        client.close()
    with lock:
        for result in results:
            if result.status == DeliveryStatus.PENDING:
                result.status = DeliveryStatus.FAILED
                result.error = f"no answer within {settings.timeout_seconds}s; given up"
    for result in results:
        if result.status == DeliveryStatus.FAILED:
            logger.warning(
                "alert.not_delivered",
                extra={
                    "receiver": result.receiver,
                    "attempts": result.attempts,
                    "error": result.error,
                },
            )
    return results


def _deliver(
    client: httpx.Client,
    url: str,
    body: bytes,
    settings: AlertSettings,
    deadline: float,
    result: Delivery,
    lock: threading.Lock,
) -> None:
    error: str | None = None
    try:
        for attempt in stamina.retry_context(
            on=RetriableDeliveryError,
            attempts=settings.retry_attempts,
            timeout=settings.timeout_seconds,
            wait_initial=WAIT_INITIAL_SECONDS,
            wait_max=WAIT_MAX_SECONDS,
        ):
            with attempt:
                with lock:
                    result.attempts += 1
                _post(client, url, body, deadline)
    except (RetriableDeliveryError, FatalDeliveryError) as exc:
        error = str(exc)
    except Exception as exc:
        error = f"{type(exc).__name__}"
    with lock:
        if result.status != DeliveryStatus.PENDING:
            return  # given up at the deadline already
        result.status = DeliveryStatus.FAILED if error is not None else DeliveryStatus.DELIVERED
        result.error = mask(error) if error is not None else None


def _post(client: httpx.Client, url: str, body: bytes, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FatalDeliveryError("no time left for another attempt; given up")
    try:
        response = client.post(
            url,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=httpx.Timeout(remaining),
        )
    except httpx.TransportError as exc:
        raise RetriableDeliveryError(f"{type(exc).__name__} talking to the receiver") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise RetriableDeliveryError(f"receiver answered {response.status_code}")
    if response.status_code >= 300:
        raise FatalDeliveryError(f"receiver answered {response.status_code}")
