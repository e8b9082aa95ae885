"""One progress and interrupt protocol for every long loop of the pack: samplers, renderers, trainers and ops.

A loop that runs for more than about a second takes ``progress: ProgressFn | None`` and calls
``report(progress, done, total)`` after each unit of work (a denoising step, a chunk of frames, an arrow, a
training step). The callback shows progress and stops the loop by raising: ComfyUI's nodes pass one that raises
ComfyUI's own interrupt exception (``nodes.common.Progress``); library users raise :class:`Interrupted`. Loops never
catch what the callback raises, so an interrupted loop returns nothing partial.

Nested loops report through :func:`sub_progress`, which maps an inner loop's ``(done, total)`` onto a slice of
the outer one's units. A unit that itself runs long may call the callback again with the same ``done`` inside it
(loop guidance does, before each pass and between forward and backward), so that an interrupt need not wait for
the unit's end: callbacks must accept repeated values.

Example:
    >>> seen = []
    >>> def loop(progress=None):
    ...     for i in range(3):
    ...         report(progress, i + 1, 3)
    >>> loop(lambda done, total: seen.append((done, total)))
    >>> seen
    [(1, 3), (2, 3), (3, 3)]
    >>> def stop_at_two(done, total):
    ...     if done == 2:
    ...         raise Interrupted("stopped by the user")
    >>> try:
    ...     loop(stop_at_two)
    ... except Interrupted as exc:
    ...     print(exc)
    stopped by the user
"""
from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``: ``done`` units of ``total`` are finished. May raise to stop the loop."""


class Interrupted(RuntimeError):
    """Raised by a progress callback (never by the library itself) to stop a long loop."""


def report(progress: ProgressFn | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback was given (a no-op otherwise)."""
    if progress is not None:
        progress(int(done), int(total))


def sub_progress(progress: ProgressFn | None, offset: int, span: int, total: int) -> ProgressFn | None:
    """A callback for an inner loop that fills units ``offset .. offset + span`` of an outer loop of ``total``.

    The inner loop's ``(done, inner_total)`` becomes ``(offset + round(span * done / inner_total), total)``.

    Example:
        >>> seen = []
        >>> inner = sub_progress(lambda d, t: seen.append((d, t)), offset=10, span=10, total=30)
        >>> inner(1, 2); inner(2, 2)
        >>> seen
        [(15, 30), (20, 30)]
    """
    if progress is None:
        return None

    def inner(done: int, inner_total: int) -> None:
        fraction = done / inner_total if inner_total > 0 else 1.0
        progress(offset + round(span * fraction), total)

    return inner
