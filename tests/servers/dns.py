"""DNS servers on loopback that answer from a table, for deliverability and sending-domain checks."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def _name(name: str) -> str:
    return name.rstrip(".").lower()


class ZoneServer:
    """Answers from ``records``: {name: [(type, text), …]} with type MX, TXT, A, AAAA or CNAME and text in
    zone-file form (``10 mx.example.com.``, ``"v=spf1 -all"``). A CNAME is followed within the table. A name
    in the table without the type asked answers no records; a name below one in the table answers no
    records; any other name is NXDOMAIN. Names in ``silent``, and the names below them, get no
    answer at all (a timeout)."""

    def __init__(self, records: dict[str, list[tuple[str, str]]], *, silent: set[str] = frozenset()) -> None:
        self.records: dict[str, list[tuple[str, str]]] = {}
        for name, rows in records.items():
            self.records.setdefault(_name(name), []).extend(rows)
        self.silent = {_name(name) for name in silent}
        self.queries: list[str] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.host, self.port = self._socket.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def exists(self, name: str) -> bool:
        return name in self.records or any(known.endswith("." + name) for known in self.records)

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = _name(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append(f"{rdtype} {name}")
        if any(name == silent or name.endswith("." + silent) for silent in self.silent):
            return None
        for _ in range(8):  # follow CNAMEs within the table
            rows = self.records.get(name, [])
            cname = next((text for kind, text in rows if kind == "CNAME"), None)
            if cname is None or rdtype == "CNAME":
                break
            response.answer.append(dns.rrset.from_text(name + ".", 300, "IN", "CNAME", cname))
            name = _name(cname)
        rows = [text for kind, text in self.records.get(name, []) if kind == rdtype]
        if rows:
            response.answer.append(dns.rrset.from_text_list(name + ".", 300, "IN", rdtype, rows))
        elif not self.exists(name):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            response = self._answer(dns.message.from_wire(wire))
            if response is not None:
                self._socket.sendto(response.to_wire(), peer)


class MxServer(ZoneServer):
    """Answers MX for the domains in ``mx`` (domain → mail host), NXDOMAIN for every other name."""

    def __init__(self, mx: dict[str, str]) -> None:
        records: dict[str, list[tuple[str, str]]] = {domain: [("MX", f"10 {host}.")] for domain, host in mx.items()}
        for host in mx.values():
            records.setdefault(host, [])
        super().__init__(records)
