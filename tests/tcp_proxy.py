"""A TCP proxy on 127.0.0.1 in front of a real server (PostgreSQL in the tests), to take it away from
the processes behind the proxy and give it back while the shared server stays up: ``cut()`` closes
every forwarded connection and refuses new ones (the port is closed, as when the server is down),
``cut(stall=True)`` accepts new connections but never answers (a hung server or a black-holed
network), ``restore()`` forwards again on the same port.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self

_CHUNK_BYTES = 64 * 1024


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._forwarding = True
        self._open: list[socket.socket] = []  # forwarded and stalled sockets, both ends
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self.port = 0  # chosen by the first listen, kept by restore()

    def __enter__(self) -> Self:
        self._listen()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop_listening()
        self._close_open()

    def cut(self, *, stall: bool = False) -> None:
        """Drop every connection; then refuse new ones, or with ``stall`` accept them and stay silent."""
        with self._lock:
            self._forwarding = False
        if not stall:
            self._stop_listening()
        self._close_open()

    def restore(self) -> None:
        """Forward new connections again (connections held by a stall are dropped)."""
        with self._lock:
            self._forwarding = True
        self._close_open()
        if self._listener is None:
            self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accepting = threading.Thread(
            target=self._accept_loop, args=(listener,), name="tcp-proxy-accept", daemon=True
        )
        self._accepting.start()

    def _stop_listening(self) -> None:
        if self._listener is None:
            return
        # shutdown wakes the thread blocked in accept() (close alone would not) and closes the port.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        assert self._accepting is not None
        self._accepting.join(timeout=5)
        self._listener = self._accepting = None

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._forwarding:  # stalled: hold the connection open, never answer
                    self._open.append(client)
                    continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), name="tcp-proxy-pump", daemon=True).start()

    def _close_open(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes its pump thread, which closes it
            except OSError:
                pass
            sock.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy ``source`` to ``target`` until either side ends, then end both."""
    try:
        while data := source.recv(_CHUNK_BYTES):
            target.sendall(data)
    except OSError:
        pass
    for sock in (source, target):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
