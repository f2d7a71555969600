"""A TCP proxy that can drop every connection on demand: a database "going away" for the
client, without stopping the shared PostgreSQL server the rest of the suite uses."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`; `cut()` drops all connections and refuses new
    ones until `restore()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Drop every open connection; refuse new ones."""
        self._cut.set()
        with self._lock:
            _drop(*self._open)
            self._open.clear()

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._cut.clear()

    def close(self) -> None:
        """Stop the proxy."""
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                # A cut may have come while connecting: checked under the lock cut() takes,
                # so no connection slips through it.
                if self._cut.is_set():
                    _drop(client, upstream)
                    continue
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _drop(source, sink)
            with self._lock:
                self._open -= {source, sink}


def _drop(*socks: socket.socket) -> None:
    """Shut down and close: shutdown() first, since close() alone neither wakes the other
    pump's recv() on the socket nor sends the peer its end while that recv() holds it (the
    server would keep the session, and its locks, open)."""
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
