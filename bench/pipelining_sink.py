"""aiosmtpd's Sink handler offering PIPELINING (RFC 2920) in its EHLO answer, as Postfix, Exchange and Gmail
do: ``bench/sending.py --pipelining`` runs its sink with it. aiosmtpd reads commands from a buffer, so a
group of them sent in one write is answered one by one, as such a server answers them."""

from aiosmtpd.handlers import Sink


class PipeliningSink(Sink):
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")  # before the last line, "250 HELP"
        return responses
