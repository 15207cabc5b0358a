import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

CORPUS = Path(__file__).parent / "corpus"
KEYS = {"file", "category", "confidence", "reasons", "failed_recipients", "status_code", "return_date"}


def run(*args: str) -> str:
    out = StringIO()
    call_command("cam_classify", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def run_failing(*args: str) -> tuple[int, str]:
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("cam_classify", *args, stdout=out, stderr=StringIO())
    return exited.value.code, out.getvalue()


def test_it_prints_category_confidence_reasons_and_bounce_details():
    out = run(str(CORPUS / "bounce_postfix_dsn_user_unknown.eml"))
    assert "bounce_postfix_dsn_user_unknown.eml" in out
    assert "category:          BOUNCE_HARD (confidence 0.98)" in out
    assert "reason:            a delivery status report" in out
    assert "failed recipients: anna.berger@berger-logistik.example" in out
    assert "status code:       5.1.1" in out


def test_it_prints_the_return_date_placed_after_today():
    out = run(str(CORPUS / "ooo_en_back_next_year.eml"), "--today", "2026-03-02")
    assert "category:          OUT_OF_OFFICE" in out
    assert "return date:       2027-01-05" in out


def test_it_prints_one_json_object_per_line_with_the_documented_keys():
    files = [CORPUS / "bounce_gmail_delay.eml", CORPUS / "ooo_fr_de_retour.eml", CORPUS / "reply_es_referral.eml"]
    out = run(*map(str, files), "--json", "--today", "2026-03-02")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["file"] for row in rows] == [str(path) for path in files]
    assert all(row.keys() >= KEYS for row in rows)
    assert {key: rows[0][key] for key in ("category", "failed_recipients", "status_code", "return_date")} == {
        "category": "BOUNCE_SOFT", "failed_recipients": ["info@kaffeeroesterei-wald.example"],
        "status_code": "4.4.1", "return_date": None}
    assert (rows[1]["category"], rows[1]["return_date"]) == ("OUT_OF_OFFICE", "2026-03-12")
    assert (rows[2]["category"], rows[2]["referral_email"]) == ("REFERRAL", "lucia.gomez@morales-hoteles.example")
    assert 0 < rows[2]["confidence"] <= 1 and rows[2]["reasons"]


def test_it_reports_each_unreadable_file_on_its_line_and_exits_one(tmp_path):
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.eml"
    binary.write_bytes(bytes(range(256)) * 8)
    good = CORPUS / "reply_de_question.eml"
    code, out = run_failing(str(empty), str(binary), str(tmp_path), str(tmp_path / "missing.eml"), str(good))
    assert code == 1
    lines = out.splitlines()
    assert lines[:4] == [
        f"{empty}: not a readable message: empty",
        f"{binary}: not a readable message: binary data, not a message",
        f"{tmp_path}: not a readable message: a directory, not a file",
        f"{tmp_path / 'missing.eml'}: not a readable message: no such file",
    ]
    assert lines[4] == str(good) and "category:          QUESTION" in out


def test_it_reports_unreadable_files_as_json_too(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("no headers here\njust words\n")
    code, out = run_failing(str(words), str(CORPUS / "reply_fr_unsubscribe.eml"), "--json")
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 1
    assert first == {"file": str(words), "error": "not a readable message: no header fields, not a message"}
    assert second["category"] == "UNSUBSCRIBE"


def test_it_exits_zero_when_every_file_was_read():
    complaints = sorted(CORPUS.glob("complaint_*.eml"))
    out = run(*(str(path) for path in complaints))
    assert out.count("category:          COMPLAINT") == len(complaints) >= 3


def test_it_refuses_a_today_that_is_not_a_date():
    with pytest.raises(CommandError, match="--today 'tomorrow' is not a date"):
        run(str(CORPUS / "reply_de_question.eml"), "--today", "tomorrow")


def test_it_names_the_domain_of_an_authentication_failure_report():
    out = run(str(CORPUS / "authfailure_dmarc_opendmarc.eml"), "--json")
    row = json.loads(out)
    assert (row["category"], row["reported_domain"]) == ("AUTH_FAILURE", "example.net")
    assert "reported domain:   example.net" in run(str(CORPUS / "authfailure_dmarc_opendmarc.eml"))
