"""The live progress line of a run: seconds, saved MiB, samples so far."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from . import sampling


class Progress:
    """One live line on a terminal; plain lines every few seconds otherwise."""

    def __init__(self, csv_path: Path, stream: TextIO | None = None,
                 plain_every: float = 5.0) -> None:
        self.csv = sampling.Follower(csv_path)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.plain_every = plain_every
        self.last_plain = 0.0

    def tick(self) -> None:
        self.csv.poll()
        last = self.csv.rows[-1] if self.csv.rows else {}
        saved_mib = sampling.saved_pages(last) * sampling.PAGE_SIZE / sampling.MIB
        elapsed = time.monotonic() - self.start
        text = f"[{elapsed:7.1f}s] saved {saved_mib:8.1f} MiB  samples {len(self.csv.rows)}"
        if self.tty:
            self.stream.write("\r" + text)
            self.stream.flush()
        elif elapsed - self.last_plain >= self.plain_every:
            self.last_plain = elapsed
            self.stream.write(text + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
