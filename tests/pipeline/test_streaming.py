"""Reading a CSV keeps memory flat: the peak does not grow with the number of rows."""

import io
import tracemalloc

from cam.sources.csv_rows import CsvRows

HEADER = b"email,first_name,last_name,company,title,industry,country,company_size\n"


class GeneratedCsv(io.RawIOBase):
    """A CSV of ``rows`` rows produced on the fly, so the test itself holds no file in memory."""

    def __init__(self, rows: int) -> None:
        self._rows = rows
        self._next = 0
        self._buffer = HEADER

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        parts, size = [self._buffer], len(self._buffer)
        while size < len(target) and self._next < self._rows:
            n = self._next
            line = (f"person{n}@company{n % 997}.example.com,Anna{n},Schmidt,Company {n % 997},CTO,"
                    f"software,DE,{n % 5000}\n").encode()
            parts.append(line)
            size += len(line)
            self._next += 1
        data = b"".join(parts)
        chunk, self._buffer = data[: len(target)], data[len(target):]
        target[: len(chunk)] = chunk
        return len(chunk)


def peak_while_reading(rows: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for _ in CsvRows(io.BufferedReader(GeneratedCsv(rows))))
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_it_reads_a_file_four_times_larger_in_the_same_memory():
    # Both files are larger than the first megabyte the reader samples to decide the encoding.
    small_count, small_peak = peak_while_reading(20_000)
    large_count, large_peak = peak_while_reading(80_000)
    assert (small_count, large_count) == (20_000, 80_000)
    assert large_peak < small_peak * 1.1
    assert large_peak < 8 * 1024 * 1024
