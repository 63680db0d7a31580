"""Progress display for every long loop: a tqdm bar on a terminal, plain lines in log files.

:func:`progress` is the one entry point (builders and keras_asc). On a terminal it returns a
``tqdm`` bar with its total; when the stream is not a terminal (a log file, a pipe, CI) it
returns a :class:`LineProgress`, which writes one plain line every ``every_percent`` % of the
total or every ``every_seconds`` seconds, whichever comes first, and a last line at the end:
no carriage-return redraws and no ANSI codes, so log files stay readable.

Both have the same surface: iterate over it (when it wraps an iterable), ``update(n)``,
``set_postfix(dict)``, ``close()``, and use as a context manager.
"""

import sys
import time


def is_terminal(stream):
    """True when ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def progress(
    iterable=None,
    *,
    total=None,
    desc="",
    unit="it",
    enabled=True,
    stream=None,
    initial=0,
    unit_scale=False,
    leave=True,
    every_seconds=30.0,
    every_percent=10.0,
):
    """A progress display over ``iterable`` (or one updated by hand with ``update(n)``).

    Args:
        iterable: what to iterate over, or None.
        total: int or None, the number of ``unit`` in all (default: ``len(iterable)`` when it
            has one).
        desc: str, the label at the start of every line.
        unit: str, what is counted (``"clip"``, ``"B"``).
        enabled: False: nothing is shown (the iterable is passed through).
        stream: where to write (default ``sys.stderr``).
        initial: int, the count already done (a resumed download).
        unit_scale: bool, show counts as k/M/G (binary prefixes when ``unit`` is ``"B"``).
        leave: bool, keep the terminal bar after it closes.
        every_seconds, every_percent: the line period when not on a terminal.

    Returns:
        a ``tqdm`` bar (terminal), a :class:`LineProgress` (otherwise) or a silent stand-in.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return _Silent(iterable)
    if is_terminal(stream):
        from tqdm import tqdm

        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            file=stream,
            initial=initial,
            unit_scale=unit_scale,
            unit_divisor=1024 if unit == "B" else 1000,
            leave=leave,
            dynamic_ncols=True,
        )
    return LineProgress(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        stream=stream,
        initial=initial,
        unit_scale=unit_scale,
        every_seconds=every_seconds,
        every_percent=every_percent,
    )


def format_count(n, unit, unit_scale=False):
    """``1536, "B", True`` → ``"1.5 KiB"``; ``12, "clip"`` → ``"12 clip"``."""
    if not unit_scale:
        return f"{int(n)} {unit}"
    base, prefixes = (1024.0, ("", "Ki", "Mi", "Gi", "Ti")) if unit == "B" else (1000.0, "kMGT")
    if unit != "B":
        prefixes = ("", *prefixes)
    value, index = float(n), 0
    while abs(value) >= base and index < len(prefixes) - 1:
        value, index = value / base, index + 1
    return f"{value:.0f} {unit}" if index == 0 else f"{value:.1f} {prefixes[index]}{unit}"


class LineProgress:
    """Plain progress lines for log files: ``desc: 40/100 clip (40%), 12 s, ~18 s left``.

    A line is written when the count crosses the next ``every_percent`` % of ``total`` or
    ``every_seconds`` have passed since the last line (without a total: by time only), and one
    final line at :meth:`close` (``done`` when the total was reached); none when the loop or
    ``with`` block ends with an exception, so an error message stays the last line.
    """

    def __init__(
        self,
        iterable=None,
        total=None,
        desc="",
        unit="it",
        stream=None,
        initial=0,
        unit_scale=False,
        every_seconds=30.0,
        every_percent=10.0,
        clock=time.monotonic,
    ):
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.n = initial
        self.unit_scale = unit_scale
        self.every_seconds = every_seconds
        self.every_percent = every_percent
        self.postfix = ""
        self.closed = False
        self._clock = clock
        self._start = self._last_time = clock()
        self._next_percent = self._percent_step(initial)

    def _percent_step(self, n):
        """The next percentage threshold above ``n``."""
        if not self.total:
            return None
        done = 100.0 * n / self.total
        return (int(done // self.every_percent) + 1) * self.every_percent

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        except BaseException:
            self.closed = True  # a failure: its error message is the last line, not a count
            raise
        self.close()

    def __len__(self):
        return self.total

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.closed = True  # a failure: its error message is the last line, not a count
        return False

    def set_postfix(self, values=None, refresh=True, **kwargs):
        values = {**(values or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc, refresh=True):
        self.desc = desc

    def update(self, n=1):
        self.n += n
        now = self._clock()
        due = now - self._last_time >= self.every_seconds
        if self._next_percent is not None and 100.0 * self.n / self.total >= self._next_percent:
            due = True
            self._next_percent = self._percent_step(self.n)
        if due and not (self.total and self.n >= self.total):  # the last line comes at close
            self._write(now)

    def line(self, now=None, final=False):
        """The text of one progress line (no newline)."""
        now = self._clock() if now is None else now
        elapsed = now - self._start
        count = format_count(self.n, self.unit, self.unit_scale)
        if self.total and self.unit_scale:  # 1.5 MiB/3.0 MiB
            count += "/" + format_count(self.total, self.unit, self.unit_scale)
        elif self.total:  # 40/100 clip
            count = f"{int(self.n)}/{int(self.total)} {self.unit}"
        if self.total:
            count += f" ({100.0 * self.n / self.total:.0f}%)"
        text = f"{self.desc}: " if self.desc else ""
        text += f"{'done ' if final else ''}{count}, {elapsed:.0f} s"
        if not final and self.total and self.n > 0 and elapsed > 0:
            rate = self.n / elapsed
            text += f", ~{max(self.total - self.n, 0) / rate:.0f} s left"
        if self.postfix:
            text += f", {self.postfix}"
        return text

    def _write(self, now, final=False):
        self._last_time = now
        self.stream.write(self.line(now, final) + "\n")
        self.stream.flush()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._write(self._clock(), final=bool(self.total) and self.n >= self.total)


class _Silent:
    """The disabled display: passes the iterable through and ignores updates."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass

    def set_postfix(self, values=None, refresh=True, **kwargs):
        pass

    def set_description(self, desc, refresh=True):
        pass

    def close(self):
        pass


def keras_verbose(verbose, stream=None):
    """Keras' ``verbose`` for ``fit``/``evaluate``: 1 (the bar) becomes 2 off a terminal.

    Keras' progress bar redraws itself with ``\\r`` and ANSI colours whenever ``posix`` is
    imported (on every Linux machine, also into a log file); ``verbose=2`` writes one plain line
    per epoch instead.
    """
    stream = sys.stdout if stream is None else stream
    return 2 if verbose == 1 and not is_terminal(stream) else verbose
