"""The production client verifies Listrak's TLS certificate: against a loopback server with a
self-signed certificate it never gets as far as sending a request."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from audience_sync.config import Credentials, ListrakSettings
from audience_sync.errors import RetriableListrakError
from audience_sync.listrak.client import ListrakClient


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[tuple[int, list[bytes]]]:
    """A TLS server on 127.0.0.1 with a self-signed certificate; what it received."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
    ]
    subprocess.run(
        [openssl, *request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    received.append(tls.recv(65536))
            except (ssl.SSLError, OSError):
                pass  # the client refused the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread
        listener.close()
        thread.join(timeout=10)


def test_a_certificate_listrak_did_not_present_is_refused(
    self_signed_server: tuple[int, list[bytes]],
) -> None:
    port, received = self_signed_server
    base = f"https://127.0.0.1:{port}"
    settings = ListrakSettings(
        api_url=f"{base}/email/v1", auth_url=f"{base}/OAuth2/Token", retry_attempts=1
    )
    credentials = Credentials(client_id="id", client_secret=SecretStr("secret"))
    with (
        ListrakClient.build(settings, credentials) as client,
        pytest.raises(RetriableListrakError, match="could not reach Listrak"),
    ):
        client.get_list(1)
    assert received == []
