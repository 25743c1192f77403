"""waitress's server with bounded connections and half-closed clients answered.

Two things waitress does by default that a public server cannot afford:

* At `connection_limit` open connections (100 by default) it stops accepting, and an idle
  connection holds its place for `channel_timeout` seconds: 110 clients that connect and
  send nothing (or half a request line) locked everyone out, /health included. Here idle
  connections are dropped after a short timeout, and when the limit is reached the
  longest-idle ones (no request being answered) are closed to make room, so a new client,
  /health and the page are always accepted.
* A client that sends its request and then shuts down its sending side (`nc -N`,
  shutdown(SHUT_WR)) reads as having left: waitress, which keeps reading to notice clients
  that go (`channel_request_lookahead`), dropped the answer. Here the end of the client's
  stream after a complete request closes only the reading side: the answer is still
  written, then the connection is closed. TCP cannot tell such a half-close from a client
  that closed its socket, both send the same FIN, so `waitress.client_disconnected` still
  reports the client as gone: a generation is not started for it (its answer is a 499
  saying so), and /health, the page and every refusal are answered as usual.
"""

from __future__ import annotations

import errno
import socket
import time

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

# What an idle connection may cost: dropped after IDLE_SECONDS without a byte, checked every
# CLEANUP_SECONDS; at the limit, idle ones are closed until EVICT_TO of it is left.
IDLE_SECONDS, CLEANUP_SECONDS, EVICT_TO = 15, 2, 0.9
_GONE = {errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED, errno.EPIPE, errno.EBADF}


class HalfCloseChannel(HTTPChannel):
    """An HTTP connection that still answers a complete request after the client closed its sending side."""

    read_closed = False  # the client sent FIN after a complete request: answer it, then close

    def readable(self):
        return not self.read_closed and super().readable()

    def writable(self):
        # once the answer is out there is nothing more to read: handle_write then closes
        return super().writable() or (self.read_closed and not self.requests)

    def handle_read(self):
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except OSError as err:
            if err.errno not in _GONE and self.adj.log_socket_errors:
                self.logger.exception("Socket error")
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
        elif self.requests or self.total_outbufs_len:
            self.read_closed = True  # a request to answer (or an answer to send): keep the writing side
            self.last_activity = time.time()
        else:
            self.handle_close()  # nothing asked, nothing owed: the client left

    def handle_write(self):
        super().handle_write()
        if self.read_closed and self.connected and not self.requests and not self.total_outbufs_len:
            self.handle_close()

    def check_client_disconnected(self):
        return not self.connected or self.read_closed

    def idle(self) -> bool:
        """Holding a place without a request to answer: nothing sent, or a request only begun."""
        return not self.requests and not self.total_outbufs_len and not self.read_closed


class BoundedServer(TcpWSGIServer):
    """waitress's TCP server whose connections cannot crowd out new clients."""

    channel_class = HalfCloseChannel

    def readable(self):
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            if self.evict_idle(len(self._map) - int(self.adj.connection_limit * EVICT_TO)):
                return False  # they close on this pass of the loop; accepting resumes on the next
        return super().readable()  # waitress's own: idle timeouts, and a warning when nothing could be closed

    def evict_idle(self, count: int) -> int:
        """Close the `count` longest-idle connections (never one whose request is being answered)."""
        idle = sorted(
            (c for c in self.active_channels.values() if c.idle() and not c.will_close), key=lambda c: c.last_activity
        )[: max(count, 0)]
        for channel in idle:
            channel.will_close = True  # closed by the loop's next pass (writable -> handle_write)
        return len(idle)


def connection_limit(wanted: int = 500) -> int:
    """`wanted` open connections, or fewer where the process may not open that many files."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return wanted
    return wanted if soft == resource.RLIM_INFINITY else max(16, min(wanted, soft // 2 - 32))


def build_server(app, sock: socket.socket, options: dict) -> BoundedServer:
    """The server for `app` on the listening `sock` with waitress `options` (as waitress.create_server builds one)."""
    adj = Adjustments(sockets=[sock], **options)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    info = (sock.family, sock.type, sock.proto, sock.getsockname())
    return BoundedServer(app, map={}, _sock=sock, dispatcher=dispatcher, adj=adj, bind_socket=False, sockinfo=info)
