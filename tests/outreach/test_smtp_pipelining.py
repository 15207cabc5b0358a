"""The SMTP envelope with and without PIPELINING (RFC 2920), against a real server that offers it or not.

A server that offers PIPELINING gets ``MAIL``, ``RCPT`` and ``DATA`` in one write; every answer is still
read and judged as that command's, and a refusal leaves the connection ready for the next message.
"""

from __future__ import annotations

import pytest
from django.core.mail import EmailMessage

from cam.models import OutboundEmail
from cam.outreach.providers.smtp import PIPELINING_WINDOW, SmtpProvider
from tests.outreach.test_providers import Asked, outreach_message, smtp_mailbox
from tests.servers.smtp import DROP, HangUp, SmtpTestServer

Status = OutboundEmail.Status


@pytest.fixture(params=[True, False], ids=["pipelining", "one command at a time"])
def server(request):
    with SmtpTestServer(pipelining=request.param) as server:
        yield server


def send(provider: SmtpProvider, to: str, n: int):
    return provider.send(outreach_message(to, message_id=f"<{n}@outreach.test>"), idempotency_key=str(n))


def anna_then_ben(server: SmtpTestServer):
    """Anna's message under the server's script, then Ben's with the server answering as usual, on one
    provider (so on the same connection unless the first closed it): their results."""
    with SmtpProvider(smtp_mailbox(server)) as provider:
        refused = send(provider, "anna@company.test", 1)
        server.answer_as_usual()
        return refused, send(provider, "ben@company.test", 2)


def test_a_server_that_offers_pipelining_gets_the_envelope_in_one_write():
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        results = [send(provider, f"lead{n}@company.test", n) for n in range(3)]

    assert [result.status for result in results] == [Status.SENT] * 3
    assert [message.rcpt_tos for message in server.messages] == [[f"lead{n}@company.test"] for n in range(3)]
    # Each MAIL and RCPT was read with the command after it already there: nothing waited for an answer.
    assert server.pipelined == [command for n in range(3)
                                for command in ("MAIL sender@outreach.test", f"RCPT lead{n}@company.test")]
    assert len(server.sessions) == 1


def test_a_server_that_does_not_offer_it_gets_one_command_at_a_time():
    with SmtpTestServer() as server, SmtpProvider(smtp_mailbox(server)) as provider:
        results = [send(provider, f"lead{n}@company.test", n) for n in range(2)]

    assert [result.status for result in results] == [Status.SENT] * 2
    assert server.pipelined == []


@pytest.mark.parametrize(("script", "status", "words"), [
    (lambda server: server.answer_rcpt("anna@company.test", "550 5.1.1 No such user"), Status.FAILED,
     "refused the recipient: anna@company.test: 550 5.1.1 No such user"),
    (lambda server: server.answer_rcpt("anna@company.test", "451 4.7.1 Greylisted"), Status.RETRY,
     "refused the recipient: anna@company.test: 451 4.7.1 Greylisted"),
    (lambda server: server.answer_mail("sender@outreach.test", "553 5.7.1 Not yours"), Status.FAILED,
     "refused the sender Alex Sender <sender@outreach.test>: 553 5.7.1 Not yours"),
    (lambda server: server.answer_data_command("554 5.3.4 Transaction failed"), Status.FAILED,
     "refused the message: 554 5.3.4 Transaction failed"),
    (lambda server: server.answer_data_command("452 4.3.1 Insufficient system storage"), Status.RETRY,
     "refused the message: 452 4.3.1 Insufficient system storage"),
    (lambda server: server.answer_data("554 5.7.1 Spam"), Status.FAILED, "refused the message: 554 5.7.1 Spam"),
], ids=["recipient refused", "recipient greylisted", "sender refused", "DATA refused", "DATA deferred",
        "data refused"])
def test_each_refusal_is_judged_as_its_commands_and_the_next_message_goes_on_the_same_connection(
        server, script, status, words):
    script(server)

    refused, following = anna_then_ben(server)

    assert refused.status == status
    assert words in refused.error
    # The refused transaction was reset: the next MAIL was not taken for a second one inside it.
    assert following.status == Status.SENT, following.error
    assert [message.rcpt_tos for message in server.messages] == [["ben@company.test"]]
    assert len(server.sessions) == 1


@pytest.mark.parametrize("refusal", [
    lambda server: server.answer_mail("sender@outreach.test", "421 4.3.2 Shutting down"),
    lambda server: server.answer_rcpt("anna@company.test", "421 4.3.2 Shutting down"),
    lambda server: server.answer_data_command("421 4.3.2 Shutting down"),
], ids=["to MAIL", "to RCPT", "to DATA"])
def test_a_421_closes_the_connection_and_the_next_message_goes_on_a_new_one(server, refusal):
    refusal(server)

    refused, following = anna_then_ben(server)

    assert refused.status == Status.RETRY
    assert "421 4.3.2 Shutting down" in refused.error
    assert following.status == Status.SENT, following.error
    assert [message.rcpt_tos for message in server.messages] == [["ben@company.test"]]
    assert len(server.sessions) == 2


@pytest.mark.parametrize(("refusal", "words"), [
    (lambda server: server.answer_rcpt("anna@company.test", "550 5.1.1 No such user"), "550 5.1.1 No such user"),
    (lambda server: server.answer_mail("sender@outreach.test", "553 5.7.1 Not yours"), "553 5.7.1 Not yours"),
], ids=["recipient refused", "sender refused"])
def test_a_server_that_takes_data_for_a_refused_transaction_is_given_no_data(refusal, words):
    """RFC 2920 has the server refuse DATA when no sender or no recipient was accepted; one that says 354
    anyway gets no message: the connection is dropped before any data, and the next message opens a new one."""
    with SmtpTestServer(pipelining=True) as server:
        refusal(server)
        server.answer_data_command("354 End data with <CR><LF>.<CR><LF>")
        refused, following = anna_then_ben(server)

    assert refused.status == Status.FAILED
    assert words in refused.error
    assert following.status == Status.SENT, following.error
    assert [message.rcpt_tos for message in server.received] == [["ben@company.test"]]
    assert len(server.sessions) == 2


def test_the_sender_commits_while_the_pipelined_envelope_goes_out_and_the_data_follows():
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        ready = Asked(server, wait_for_rcpt="anna@company.test")
        sent = provider.send_when(outreach_message("anna@company.test"), idempotency_key="1", ready=ready)
        told_no = provider.send_when(outreach_message("ben@company.test", message_id="<2@outreach.test>"),
                                     idempotency_key="2", ready=Asked(server, False, wait_for_rcpt="ben@company.test"))

    assert sent is not None and sent.status == Status.SENT
    assert ready.calls == 1 and ready.received_then == []  # the envelope went out before anything was delivered
    assert told_no is None
    assert [message.rcpt_tos for message in server.received] == [["anna@company.test"]]  # never Ben's
    assert "RCPT anna@company.test" in server.pipelined


@pytest.mark.parametrize("refusal", [
    lambda server: server.answer_mail("sender@outreach.test", HangUp("550 5.7.1 Go away")),
    lambda server: server.answer_rcpt("anna@company.test", HangUp("550 5.1.1 No such user")),
], ids=["sender", "recipient"])
def test_a_refusal_the_server_hangs_up_after_is_still_the_refusal(server, refusal):
    """The commands sent after the refused one are never answered: the refusal decides, not the hang-up."""
    refusal(server)

    refused, following = anna_then_ben(server)

    assert refused.status == Status.FAILED  # permanent: never tried again
    assert "550 5." in refused.error
    assert following.status == Status.SENT, following.error
    assert [message.rcpt_tos for message in server.received] == [["ben@company.test"]]
    assert len(server.sessions) == 2


def test_a_message_with_one_recipient_refused_goes_to_the_others(server):
    server.answer_rcpt("nobody@company.test", "550 5.1.1 No such user")
    message = EmailMessage("Hello", "Hi both", "sender@outreach.test", ["anna@company.test", "nobody@company.test",
                                                                       "ben@company.test"])

    with SmtpProvider(smtp_mailbox(server)) as provider:
        result = provider.send(message, idempotency_key="1")

    assert result.status == Status.SENT
    assert [message.rcpt_tos for message in server.messages] == [["anna@company.test", "ben@company.test"]]


def test_a_421_to_a_recipient_in_the_middle_of_the_group_ends_the_connection():
    message = EmailMessage("Hello", "Hi all", "sender@outreach.test", ["anna@company.test", "ben@company.test",
                                                                       "cleo@company.test"])
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        server.answer_rcpt("ben@company.test", "421 4.3.2 Shutting down")
        refused = provider.send(message, idempotency_key="1")
        server.answer_as_usual()
        following = send(provider, "dora@company.test", 2)

    assert refused.status == Status.RETRY
    assert "ben@company.test: 421 4.3.2 Shutting down" in refused.error
    assert following.status == Status.SENT, following.error
    assert [message.rcpt_tos for message in server.received] == [["dora@company.test"]]
    assert len(server.sessions) == 2


def test_a_group_larger_than_the_send_window_goes_one_command_at_a_time():
    """RFC 2920: a client that writes a whole group before reading keeps it within the send window."""
    recipients = [f"lead{n:04}@company.test" for n in range(PIPELINING_WINDOW // 20)]
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        many = provider.send(EmailMessage("Hello", "Hi", "sender@outreach.test", recipients), idempotency_key="1")
        one = send(provider, "anna@company.test", 2)

    assert (many.status, one.status) == (Status.SENT, Status.SENT)
    assert [message.rcpt_tos for message in server.messages] == [recipients, ["anna@company.test"]]
    assert server.pipelined == ["MAIL sender@outreach.test", "RCPT anna@company.test"]  # only the small group


@pytest.mark.parametrize("answer", [True, False])
def test_a_refused_pipelined_envelope_is_judged_once_the_sender_was_asked(answer):
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        server.answer_rcpt("anna@company.test", "550 5.1.1 No such user")
        ready = Asked(server, answer)
        refused = provider.send_when(outreach_message("anna@company.test"), idempotency_key="1", ready=ready)
        following = send(provider, "ben@company.test", 2)

    assert ready.calls == 1
    if answer:
        assert refused is not None and refused.status == Status.FAILED
        assert "550 5.1.1 No such user" in refused.error
    else:
        assert refused is None  # the sender said no: its outcome is its own to record
    assert following.status == Status.SENT, following.error
    assert [message.rcpt_tos for message in server.received] == [["ben@company.test"]]


def test_a_message_dropped_after_its_data_is_unknown_with_pipelining_too():
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        server.answer_data(DROP, "250 OK")
        dropped = send(provider, "anna@company.test", 1)
        following = send(provider, "ben@company.test", 2)

    assert dropped.status == Status.UNKNOWN
    assert "may have been delivered" in dropped.error
    assert following.status == Status.SENT, following.error
    assert len(server.sessions) == 2


# --- each envelope with the data of the message before --------------------------------------------------

def in_a_row(provider: SmtpProvider, server: SmtpTestServer, recipients: list[str], *, follows: bool = True,
             answers: dict[str, bool] | None = None) -> list:
    """One message per recipient, as the send step sends them: each asked for with a ``ready``, and the next
    one prepared while the provider waits, said to follow on the same connection. Their results."""
    messages = [outreach_message(to, message_id=f"<{n}@outreach.test>") for n, to in enumerate(recipients)]
    results = []
    for n, message in enumerate(messages):
        upcoming = messages[n + 1] if n + 1 < len(messages) else None
        results.append(provider.send_when(
            message, idempotency_key=str(n), ready=Asked(server, (answers or {}).get(message.to[0], True)),
            meanwhile=(lambda upcoming=upcoming: provider.prepare(upcoming, follows=follows)) if upcoming else None))
    return results


def statuses(results: list) -> list:
    return [result.status if result is not None else None for result in results]


ROW = ["anna@company.test", "ben@company.test", "cleo@company.test", "dora@company.test"]


@pytest.mark.parametrize("follows", [True, False])
def test_each_envelope_goes_in_the_same_write_as_the_data_of_the_message_before(follows):
    """One round trip an email instead of two: the server answers the data, then the next envelope."""
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        results = in_a_row(provider, server, ROW, follows=follows)

    assert statuses(results) == [Status.SENT] * 4
    assert [message.rcpt_tos for message in server.received] == [[to] for to in ROW]  # each once, in order
    assert server.followed == (ROW[:3] if follows else [])  # the last had nothing behind it
    assert len(server.sessions) == 1


def test_a_server_without_pipelining_gets_each_envelope_after_the_data_was_answered():
    with SmtpTestServer() as server, SmtpProvider(smtp_mailbox(server)) as provider:
        results = in_a_row(provider, server, ROW)

    assert statuses(results) == [Status.SENT] * 4
    assert server.followed == [] and server.pipelined == []
    assert [message.rcpt_tos for message in server.messages] == [[to] for to in ROW]


@pytest.mark.parametrize(("reply", "status"), [("554 5.7.1 Spam", Status.FAILED),
                                               ("451 4.3.0 Try again later", Status.RETRY)])
def test_a_refused_data_with_an_envelope_behind_it_sends_the_next_message_again_on_a_new_connection(reply, status):
    """No RSET after the refusal (it would reach a server waiting for the next message's data), and no trust in
    the envelope behind it, which a server that hangs up after refusing never answers: the next goes whole."""
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        server.answer_data("250 OK", reply, "250 OK")
        results = in_a_row(provider, server, ROW)

    assert statuses(results) == [Status.SENT, status, Status.SENT, Status.SENT]
    assert reply in results[1].error
    assert [message.rcpt_tos[0] for message in server.messages] == [ROW[0], ROW[2], ROW[3]]
    assert len(server.sessions) == 2


def test_a_server_that_hangs_up_after_refusing_a_data_costs_the_next_message_nothing():
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        server.answer_data("250 OK", HangUp("554 5.7.1 Spam"), "250 OK")
        results = in_a_row(provider, server, ROW)

    assert statuses(results) == [Status.SENT, Status.FAILED, Status.SENT, Status.SENT]
    assert [message.rcpt_tos[0] for message in server.messages] == [ROW[0], ROW[2], ROW[3]]


@pytest.mark.parametrize(("reply", "status"), [("421 4.3.2 Shutting down", Status.RETRY), (DROP, Status.UNKNOWN)],
                         ids=["421", "dropped"])
def test_a_connection_that_ends_after_a_data_takes_the_envelope_behind_it_along(reply, status):
    """The next message goes again, whole, on a new connection: delivered once."""
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        server.answer_data("250 OK", reply, "250 OK")
        results = in_a_row(provider, server, ROW)

    assert statuses(results) == [Status.SENT, status, Status.SENT, Status.SENT]
    assert [message.rcpt_tos[0] for message in server.messages] == [ROW[0], ROW[2], ROW[3]]
    assert len(server.sessions) == 2


def test_a_refused_recipient_in_an_envelope_sent_ahead_fails_that_message_alone():
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        server.answer_rcpt(ROW[1], "550 5.1.1 No such user")
        results = in_a_row(provider, server, ROW)

    assert statuses(results) == [Status.SENT, Status.FAILED, Status.SENT, Status.SENT]
    assert "550 5.1.1 No such user" in results[1].error
    assert [message.rcpt_tos[0] for message in server.received] == [ROW[0], ROW[2], ROW[3]]
    assert len(server.sessions) == 1


def test_a_message_whose_envelope_went_ahead_is_never_delivered_when_the_sender_says_no():
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        results = in_a_row(provider, server, ROW[:3], answers={ROW[1]: False})

    assert statuses(results) == [Status.SENT, None, Status.SENT]
    assert server.followed == [ROW[0]]  # Ben's envelope went with Anna's data, and his data never
    assert [message.rcpt_tos[0] for message in server.received] == [ROW[0], ROW[2]]
    assert len(server.sessions) == 2  # dropped before any data: Cleo's goes on a new one


def test_an_envelope_sent_ahead_for_a_message_that_is_not_sent_next_delivers_nothing():
    """Another message sent first, or the step stopping (out of time): Ben's envelope, waiting for its data,
    is abandoned with its connection, without a QUIT that the server would take as his text."""
    anna, ben, cleo, dora = (outreach_message(to, message_id=f"<{n}@outreach.test>") for n, to in enumerate(ROW))
    with SmtpTestServer(pipelining=True) as server, SmtpProvider(smtp_mailbox(server)) as provider:
        provider.send_when(anna, idempotency_key="0", ready=Asked(server),
                           meanwhile=lambda: provider.prepare(ben, follows=True))
        other = provider.send_when(cleo, idempotency_key="2", ready=Asked(server))  # not Ben
        provider.send_when(dora, idempotency_key="3", ready=Asked(server),
                           meanwhile=lambda: provider.prepare(ben, follows=True))
        # closed here, with Ben's envelope answered 354 on the second connection

    assert other is not None and other.status == Status.SENT
    assert server.followed == [ROW[0], ROW[3]]
    assert [message.rcpt_tos[0] for message in server.received] == [ROW[0], ROW[2], ROW[3]]  # never Ben
    assert len(server.sessions) == 2
