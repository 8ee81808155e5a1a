"""A Kafka front for the security tests: TLS and SASL/SCRAM in front of a plaintext broker.

Tansu 0.6.0, the only broker that runs here, cannot authenticate anyone and
cannot speak TLS (see docs/security.md and anomalyd/io/broker.py), so the
security tests put this front between the Kafka clients and Tansu. It is the
broker's side of what the clients do, and nothing else:

* TLS with Python's ``ssl`` (a server certificate from a throwaway CA made by
  :func:`make_pki`; optionally a client certificate is required);
* SaslHandshake v0-1 and SaslAuthenticate v0-2 with SCRAM-SHA-256/512
  (RFC 5802/7677): credentials are kept the way Kafka keeps them (salt,
  iterations, StoredKey, ServerKey), the client's proof is verified, and the
  server signature is sent back for the client to verify;
* before authentication only ApiVersions (forwarded) and SASL are served, and
  any other request closes the connection, as Kafka does;
* after authentication (at once without SASL) bytes are copied both ways
  unchanged.

The front's address is known before it starts, so the broker can be started
with ``advertised=front.address`` (metadata then sends clients back through
the front) and the front with ``start(broker.bootstrap)``.  Logins are
recorded in ``front.logins``, refusals in ``front.failures``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import shutil
import ssl
import struct
import subprocess
import threading
from pathlib import Path

from .service import free_port

HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
ITERATIONS = 4096
API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58


# --------------------------------------------------------------------------
# throwaway certificates (openssl CLI; nothing is written outside `where`)
# --------------------------------------------------------------------------


def make_pki(where: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost, a client
    certificate, and a second CA that signed none of them. EC keys (fast)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not found")
    where.mkdir(parents=True, exist_ok=True)
    p = {
        n: where / n
        for n in (
            "ca.pem",
            "ca.key",
            "other-ca.pem",
            "other-ca.key",
            "server.pem",
            "server.key",
            "client.pem",
            "client.key",
        )
    }

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=where)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "other-ca"):
        run(
            "req",
            "-x509",
            *ec,
            "-keyout",
            str(p[f"{name}.key"]),
            "-out",
            str(p[f"{name}.pem"]),
            "-days",
            "2",
            "-subj",
            f"/CN=anomalyd test {name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (where / f"{name}.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\n" + ext
        )
        run("req", *ec, "-keyout", str(p[f"{name}.key"]), "-out", f"{name}.csr", "-subj", f"/CN=anomalyd-{name}")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            str(p["ca.pem"]),
            "-CAkey",
            str(p["ca.key"]),
            "-CAcreateserial",
            "-out",
            str(p[f"{name}.pem"]),
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
    return p


def server_context(pki: dict[str, Path], require_client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca.pem"])
    return ctx


# --------------------------------------------------------------------------
# SCRAM, the server's side
# --------------------------------------------------------------------------


def scram_credential(password: str, mechanism: str, salt: bytes | None = None, iterations: int = ITERATIONS):
    """(salt, iterations, StoredKey, ServerKey): what a broker stores; not the password."""
    h = HASHES[mechanism]
    salt = salt or os.urandom(24)
    salted = hashlib.pbkdf2_hmac(h().name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    return salt, iterations, h(client_key).digest(), hmac.new(salted, b"Server Key", h).digest()


def _attrs(msg: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in msg.split(",") if "=" in part)


class ScramServer:
    """One login: server-first from client-first, then verify client-final."""

    def __init__(self, mechanism: str, credentials: dict):
        self.mechanism = mechanism
        self.credentials = credentials
        self.user: str | None = None

    def first(self, client_first: bytes) -> bytes:
        text = client_first.decode()
        cbind, authzid, bare = text.split(",", 2)
        self.gs2 = f"{cbind},{authzid},"
        a = _attrs(bare)
        self.user = a["n"].replace("=2C", ",").replace("=3D", "=")
        cred = self.credentials.get((self.user, self.mechanism))
        # An unknown user gets a made-up credential and fails at the proof, as in Kafka.
        self.cred = cred or scram_credential(os.urandom(16).hex(), self.mechanism)
        self.known = cred is not None
        salt, iterations, _stored, _server = self.cred
        self.nonce = a["r"] + base64.b64encode(os.urandom(18)).decode()
        self.server_first = f"r={self.nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        self.client_first_bare = bare
        return self.server_first.encode()

    def final(self, client_final: bytes) -> bytes | None:
        """The server-final message, or None if the proof is wrong."""
        text = client_final.decode()
        without_proof, _, proof = text.rpartition(",p=")
        a = _attrs(without_proof)
        if a.get("r") != self.nonce or base64.b64decode(a.get("c", "")) != self.gs2.encode():
            return None
        h = HASHES[self.mechanism]
        _salt, _iterations, stored_key, server_key = self.cred
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, h).digest()
        client_key = bytes(x ^ y for x, y in zip(base64.b64decode(proof), signature, strict=True))
        if not self.known or not hmac.compare_digest(h(client_key).digest(), stored_key):
            return None
        return b"v=" + base64.b64encode(hmac.new(server_key, auth_message, h).digest())


# --------------------------------------------------------------------------
# Kafka framing (only what the SASL requests need)
# --------------------------------------------------------------------------


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _put_uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _parse_request(frame: bytes) -> tuple[int, int, int, bytes]:
    """(api_key, api_version, correlation_id, body) of one request (no size prefix)."""
    api_key, api_version, correlation_id, n = struct.unpack(">hhih", frame[:10])
    pos = 10 + max(n, 0)
    if api_key == SASL_AUTHENTICATE and api_version >= 2:  # flexible: header tagged fields
        count, pos = _uvarint(frame, pos)
        for _ in range(count):
            _tag, pos = _uvarint(frame, pos)
            size, pos = _uvarint(frame, pos)
            pos += size
    return api_key, api_version, correlation_id, frame[pos:]


def _auth_bytes(version: int, body: bytes) -> bytes:
    if version >= 2:
        n, pos = _uvarint(body, 0)
        return body[pos : pos + n - 1]
    (n,) = struct.unpack(">i", body[:4])
    return body[4 : 4 + n]


def _handshake_response(correlation_id: int, error: int, mechanisms) -> bytes:
    out = struct.pack(">ihi", correlation_id, error, len(mechanisms))
    for m in mechanisms:
        out += struct.pack(">h", len(m)) + m.encode()
    return out


def _authenticate_response(correlation_id: int, version: int, error: int, message: str | None, data: bytes) -> bytes:
    if version >= 2:
        msg = b"\x00" if message is None else _put_uvarint(len(message.encode()) + 1) + message.encode()
        return (
            struct.pack(">i", correlation_id)
            + b"\x00"
            + struct.pack(">h", error)
            + msg
            + _put_uvarint(len(data) + 1)
            + data
            + struct.pack(">q", 0)
            + b"\x00"
        )
    msg = struct.pack(">h", -1) if message is None else struct.pack(">h", len(message.encode())) + message.encode()
    out = struct.pack(">ih", correlation_id, error) + msg + struct.pack(">i", len(data)) + data
    return out + (struct.pack(">q", 0) if version >= 1 else b"")


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(struct.pack(">i", len(payload)) + payload)


# --------------------------------------------------------------------------
# the front
# --------------------------------------------------------------------------


class KafkaFront:
    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512"),
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ):
        """``users``: name -> password for SASL/SCRAM (None: no SASL);
        ``ssl_context``: a server context for TLS (None: plaintext)."""
        self.upstream_host, self.upstream_port = "", 0
        self.host, self.port = host, free_port()
        self.sasl = users is not None
        self.mechanisms = mechanisms
        self.credentials = {(u, m): scram_credential(pw, m) for u, pw in (users or {}).items() for m in mechanisms}
        self.ssl_context = ssl_context
        self.logins: list[tuple[str, str]] = []
        self.failures: list[tuple[str | None, str]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kafka-front", daemon=True)
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, upstream: str) -> "KafkaFront":
        """Serve, forwarding to the plaintext broker at ``upstream`` (host:port)."""
        host, _, port = upstream.rpartition(":")
        self.upstream_host, self.upstream_port = host, int(port)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        return self

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(
            self._client, self.host, self.port, ssl=self.ssl_context, reuse_address=True
        )

    def stop(self) -> None:
        async def close():
            self.server.close()
            for t in list(self.tasks):
                t.cancel()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        up_writer = None
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            if self.sasl and not await self._login(reader, writer, up_reader, up_writer):
                return
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            self.tasks.discard(task)
            for w in (writer, up_writer):
                if w is not None:
                    w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _login(self, reader, writer, up_reader, up_writer) -> bool:
        mechanism: str | None = None
        scram: ScramServer | None = None
        while True:
            frame = await _read_frame(reader)
            api_key, version, corr, body = _parse_request(frame)
            if api_key == API_VERSIONS:
                _write_frame(up_writer, frame)
                _write_frame(writer, await _read_frame(up_reader))
            elif api_key == SASL_HANDSHAKE:
                (n,) = struct.unpack(">h", body[:2])
                asked = body[2 : 2 + n].decode()
                ok = asked in self.mechanisms and version >= 1  # v0's unframed tokens are not served
                _write_frame(
                    writer, _handshake_response(corr, 0 if ok else UNSUPPORTED_SASL_MECHANISM, self.mechanisms)
                )
                if not ok:
                    self.failures.append((None, f"mechanism {asked} (handshake v{version})"))
                    await writer.drain()
                    return False
                mechanism = asked
            elif api_key == SASL_AUTHENTICATE and mechanism is not None:
                token = _auth_bytes(version, body)
                if scram is None:
                    scram = ScramServer(mechanism, self.credentials)
                    _write_frame(writer, _authenticate_response(corr, version, 0, None, scram.first(token)))
                else:
                    final = scram.final(token)
                    if final is None:
                        self.failures.append((scram.user, mechanism))
                        _write_frame(
                            writer,
                            _authenticate_response(
                                corr,
                                version,
                                SASL_AUTHENTICATION_FAILED,
                                f"Authentication failed during authentication due to invalid credentials with "
                                f"SASL mechanism {mechanism}",
                                b"",
                            ),
                        )
                        await writer.drain()
                        return False
                    _write_frame(writer, _authenticate_response(corr, version, 0, None, final))
                    self.logins.append((scram.user, mechanism))
                    await writer.drain()
                    return True
            else:  # anything else before a login: Kafka closes the connection
                self.failures.append((None, f"api {api_key} before authentication"))
                return False
            await writer.drain()
