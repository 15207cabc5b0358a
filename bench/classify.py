"""Classification speed: messages per second over the suite's corpus (tests/inbox/corpus), no database.

    .venv/bin/python bench/classify.py                 # 20 rounds over every sample
    .venv/bin/python bench/classify.py --rounds 50 --by-kind

Each round classifies every sample from its bytes, as the worker's processing step does (parsing
included); the first round is a warm-up (regular expressions compiled, imports done) and is not
counted. Prints the rate of the fastest and the median round, and with ``--by-kind`` the time per
message for each kind of sample (bounce, complaint, auto-reply, reply …), slowest first.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicmo_site.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from cam.inbox.classify import classify_message  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "inbox" / "corpus"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds over the corpus, after one warm-up round")
    parser.add_argument("--by-kind", action="store_true", help="also the time per message of each kind of sample")
    args = parser.parse_args()
    today = datetime.date.fromisoformat(json.loads((CORPUS / "expected.json").read_text())["today"])
    samples = [(path.name.split("_")[0], path.read_bytes()) for path in sorted(CORPUS.glob("*.eml"))]
    size = sum(len(raw) for _, raw in samples)
    per_kind: dict[str, list[float]] = defaultdict(list)
    rounds: list[float] = []
    for round_number in range(args.rounds + 1):
        started = time.perf_counter()
        for kind, raw in samples:
            before = time.perf_counter()
            classify_message(raw, today=today)
            if round_number and args.by_kind:
                per_kind[kind].append(time.perf_counter() - before)
        if round_number:  # round 0 warms up
            rounds.append(time.perf_counter() - started)
    best, median = min(rounds), statistics.median(rounds)
    print(f"corpus: {len(samples)} messages, {size / 1024:.0f} KiB; {args.rounds} rounds after a warm-up")
    print(f"fastest round: {len(samples) / best:,.0f} messages/s ({1000 * best / len(samples):.2f} ms each)")
    print(f"median round:  {len(samples) / median:,.0f} messages/s ({1000 * median / len(samples):.2f} ms each)")
    if args.by_kind:
        print("\nper kind (median ms per message):")
        for kind, times in sorted(per_kind.items(), key=lambda item: -statistics.median(item[1])):
            print(f"  {kind:<12} {1000 * statistics.median(times):6.2f} ms  ({len(times) // args.rounds} samples)")


if __name__ == "__main__":
    main()
