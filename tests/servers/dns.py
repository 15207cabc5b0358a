"""A DNS server on loopback that answers MX queries from a table, for deliverability checks."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class MxServer:
    """Answers MX for the domains in ``mx`` (domain → mail host), NXDOMAIN for every other name."""

    def __init__(self, mx: dict[str, str]) -> None:
        self.mx = {domain.rstrip(".").lower(): host for domain, host in mx.items()}
        self.queries: list[str] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.host, self.port = self._socket.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> MxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            self.queries.append(f"{dns.rdatatype.to_text(question.rdtype)} {name}")
            if name in self.mx and question.rdtype == dns.rdatatype.MX:
                response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "MX", f"10 {self.mx[name]}."))
            elif name not in self.mx and not any(name.endswith("." + host) or name == host.rstrip(".")
                                                 for host in self.mx.values()):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self._socket.sendto(response.to_wire(), peer)
