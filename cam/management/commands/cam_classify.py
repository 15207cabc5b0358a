import datetime
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cam.inbox.classify import Classification, UnreadableMessage, classify_message, read_message


def _read(path: Path) -> bytes:
    """The file's bytes; ``UnreadableMessage`` says why there are none."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UnreadableMessage("no such file") from None
    except IsADirectoryError:
        raise UnreadableMessage("a directory, not a file") from None
    except OSError as exc:
        raise UnreadableMessage(exc.strerror or str(exc)) from None


class Command(BaseCommand):
    help = ("Show how CAM reads raw email files (.eml): category, confidence, reasons, failed recipients and "
            "status code, return date. Exits 1 when a file could not be read as a message.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
        parser.add_argument("--json", action="store_true", help="Print one JSON object per line.")
        parser.add_argument("--today", metavar="YYYY-MM-DD",
                            help="Place return dates written without a year as if today were this date.")

    def handle(self, *args, **options) -> None:
        today = None
        if options["today"]:
            try:
                today = datetime.date.fromisoformat(options["today"])
            except ValueError:
                raise CommandError(f"--today {options['today']!r} is not a date such as 2026-03-02.") from None
        unreadable = 0
        for path in options["files"]:
            try:
                result = classify_message(read_message(_read(path)), today=today)
            except UnreadableMessage as exc:
                unreadable += 1
                self._unreadable(path, str(exc), as_json=options["json"])
                continue
            if options["json"]:
                self.stdout.write(json.dumps(self._as_dict(path, result), ensure_ascii=False))
            else:
                self._as_text(path, result)
        if unreadable:
            raise SystemExit(1)

    @staticmethod
    def _as_dict(path: Path, result: Classification) -> dict:
        return {
            "file": str(path),
            "category": str(result.category),
            "confidence": result.confidence,
            "reasons": list(result.reasons),
            "failed_recipients": list(result.failed_recipients),
            "status_code": result.status_code,
            "return_date": result.return_date.isoformat() if result.return_date else None,
            "referral_email": result.referral_email,
            "reported_domain": result.reported_domain,
        }

    def _as_text(self, path: Path, result: Classification) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(str(path)))
        self.stdout.write(f"  category:          {result.category} (confidence {result.confidence:.2f})")
        for reason in result.reasons:
            self.stdout.write(f"  reason:            {reason}")
        if result.failed_recipients or result.status_code:
            self.stdout.write(f"  failed recipients: {', '.join(result.failed_recipients) or '-'}")
            self.stdout.write(f"  status code:       {result.status_code or '-'}")
        if result.return_date:
            self.stdout.write(f"  return date:       {result.return_date.isoformat()}")
        if result.referral_email:
            self.stdout.write(f"  referred to:       {result.referral_email}")
        if result.reported_domain:
            self.stdout.write(f"  reported domain:   {result.reported_domain}")

    def _unreadable(self, path: Path, reason: str, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"file": str(path), "error": f"not a readable message: {reason}"},
                                         ensure_ascii=False))
        else:
            self.stdout.write(self.style.ERROR(f"{path}: not a readable message: {reason}"))
