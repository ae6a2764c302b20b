"""Asks every query of a file over one transport with dnspython, and writes the responses.

usage: transports.py TRANSPORT HOST PORT CA QUERIES OUT

TRANSPORT is udp, tcp, dot (RFC 7858), doh-post or doh-get (RFC 8484 over HTTP/2) or doq
(RFC 9250). QUERIES holds one query a line, its octets in hex. OUT gets one line a query:
the response's octets in hex as received, or "error: ..." when there was none. One socket,
connection or HTTP/2 session serves every query (opened again if the server closes it). The
certificate is checked against CA for the name dns.test (IP address 127.0.0.1 for DoH).
"""

import socket
import ssl
import sys

import dns.message
import dns.query
import dns.quic
import httpx2

transport, host, port, ca, queries, out = sys.argv[1:7]
port = int(port)
TIMEOUT = 10


def context(alpn=None):
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx


class Udp:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def ask(self, q):
        return dns.query.udp(q, host, port=port, timeout=TIMEOUT, sock=self.sock)

    def reset(self):
        pass


class Stream:
    """TCP, or TLS with ALPN "dot"."""

    def __init__(self, tls):
        self.tls = tls
        self.sock = None

    def ask(self, q):
        if self.sock is None:
            s = socket.create_connection((host, port), timeout=TIMEOUT)
            if self.tls:
                s = context("dot").wrap_socket(s, server_hostname="dns.test")
                assert s.selected_alpn_protocol() == "dot", s.selected_alpn_protocol()
            s.setblocking(False)
            self.sock = s
        how = dns.query.tls if self.tls else dns.query.tcp
        return how(q, host, port=port, timeout=TIMEOUT, sock=self.sock)

    def reset(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None


class Https:
    """One HTTP/2 session (httpx2 with h2), GET or POST."""

    def __init__(self, post):
        self.post = post
        self.session = httpx2.Client(http1=False, http2=True, verify=context())
        # The session speaks HTTP/2 to the server, as RFC 8484 §5.2 asks.
        probe = self.session.get(f"https://{host}:{port}/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB")
        assert probe.http_version == "HTTP/2", probe.http_version

    def ask(self, q):
        return dns.query.https(
            q,
            host,
            port=port,
            timeout=TIMEOUT,
            session=self.session,
            post=self.post,
            http_version=dns.query.HTTPVersion.H2,
        )

    def reset(self):
        pass


class Quic:
    def __init__(self):
        self.manager = dns.quic.SyncQuicManager(verify_mode=ca, server_name="dns.test")
        self.connection = None

    def ask(self, q):
        if self.connection is None:
            self.connection = self.manager.connect(host, port)
        return dns.query.quic(q, host, port=port, timeout=TIMEOUT, connection=self.connection)

    def reset(self):
        if self.connection is not None:
            self.connection.close()
        self.connection = None


client = {
    "udp": Udp,
    "tcp": lambda: Stream(False),
    "dot": lambda: Stream(True),
    "doh-post": lambda: Https(True),
    "doh-get": lambda: Https(False),
    "doq": Quic,
}[transport]()

with open(queries) as f, open(out, "w") as w:
    for line in f:
        raw = bytes.fromhex(line.strip())
        q = dns.message.from_wire(raw)
        # What is sent is dnspython's own rendering: it must be the query asked for.
        if q.to_wire() != raw:
            w.write(f"error: dnspython renders the query as {q.to_wire().hex()}\n")
            continue
        try:
            try:
                r = client.ask(q)
            except (EOFError, ConnectionError):
                # The server closed an idle or used-up connection: once more on a new one.
                client.reset()
                r = client.ask(q)
            w.write(r.wire.hex() + "\n")
            w.flush()
        except Exception as e:  # noqa: BLE001 - reported per query, the test fails on it
            w.write(f"error: {type(e).__name__}: {e}\n")
