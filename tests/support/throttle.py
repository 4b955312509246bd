"""A loopback TCP proxy that forwards answers at a fixed byte rate: a registry behind it pulls
slowly enough for a test (and a browser polling once a second) to watch the pull move.

`ThrottledProxy(target_port, bytes_per_s).start()` listens on 127.0.0.1 (`.port`); `.pause()`
holds the answers where they are (a pull that stays in progress while a test looks at it) until
`.resume()`; `.stop()` closes everything. Only the target's answers are paced (per connection);
requests pass as they come. Threads are daemons and end with their sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

CHUNK = 16 * 1024


class ThrottledProxy:
    def __init__(self, target_port: int, bytes_per_s: float) -> None:
        self.target = ("127.0.0.1", target_port)
        self.bytes_per_s = bytes_per_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._stop = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ThrottledProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def stop(self) -> None:
        self._stop.set()
        self._flowing.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=30)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, paced: bool) -> None:
        try:
            while not self._stop.is_set():
                data = src.recv(CHUNK)
                if not data:
                    break
                if paced:
                    self._flowing.wait()
                dst.sendall(data)
                if paced:
                    time.sleep(len(data) / self.bytes_per_s)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
