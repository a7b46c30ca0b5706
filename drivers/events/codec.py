"""Streaming encoder/decoder interfaces shared by the EVT 2.0, 2.1 and 3.0 codecs.

A decoder is fed bytes in arbitrary pieces (a USB packet, a 4 MiB file block) and returns every
event completed so far. All decoding state (time base, current row, a vector group or an OTHERS
group straddling two pieces, an incomplete word) lives in a small int64 array plus a few tail bytes,
so a decoder can be snapshotted and restored: that is how file readers seek by time.

The per-word work is done by a numba kernel that each format supplies; this module only owns the
buffer management around it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
from drivers.events.validate import check_cd, check_triggers

#: Room a kernel must always have left in its CD output before it decodes one more word group
#: (the largest group, an EVT3 vector triple or an EVT2.1 vector word, yields 32 events).
KERNEL_CD_HEADROOM = 32


@dataclass(frozen=True)
class DecoderSnapshot:
    """Complete, immutable decoder state at a byte boundary of the input stream."""

    state: np.ndarray
    tail: bytes


class EventDecoder(ABC):
    """Base class of the streaming RAW decoders.

    Subclasses provide the numba kernel ``_run(words, pos, state, out_cd, out_trig, width, height)``
    which decodes from ``words[pos]`` until the input ends or either output is nearly full, and
    returns ``(new_pos, n_cd, n_trig)``. The kernel must stop only at positions where resuming
    with the same ``state`` continues the stream exactly.
    """

    format_name: ClassVar[str]
    word_dtype: ClassVar[np.dtype]
    #: Typical upper bound of CD events per word, used to size output buffers (never a limit).
    events_per_word_hint: ClassVar[float]

    def __init__(self, width: int, height: int) -> None:
        self.width = int(width)
        self.height = int(height)
        self._state = self._new_state()
        self._tail = b""

    # -- format-specific parts -------------------------------------------------------------
    @abstractmethod
    def _new_state(self) -> np.ndarray:
        """A fresh int64 state vector (nothing decoded yet)."""

    @staticmethod
    @abstractmethod
    def _run(words, pos, state, out_cd, out_trig, width, height):  # pragma: no cover - numba kernel
        """The format's decoding kernel (see class docstring)."""

    @property
    @abstractmethod
    def time_shift_us(self) -> int | None:
        """The offset OpenEB subtracts when time shifting is on; None before the first TIME_HIGH."""

    @property
    @abstractmethod
    def current_time_us(self) -> int | None:
        """Time reached by the stream's time words so far (µs); None before the first TIME_HIGH."""

    @property
    @abstractmethod
    def group_pending(self) -> bool:
        """True while a multi-word group (vector triple, OTHERS + CONTINUED) is incomplete."""

    # -- shared machinery ------------------------------------------------------------------
    @property
    def word_bytes(self) -> int:
        return self.word_dtype.itemsize

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete trailing word held back until more data arrives."""
        return len(self._tail)

    def reset(self) -> None:
        """Forget everything decoded so far (as after opening the stream anew)."""
        self._state = self._new_state()
        self._tail = b""

    def snapshot(self) -> DecoderSnapshot:
        return DecoderSnapshot(self._state.copy(), self._tail)

    def restore(self, snapshot: DecoderSnapshot) -> None:
        self._state = snapshot.state.copy()
        self._tail = snapshot.tail

    def decode(self, data: bytes | bytearray | memoryview | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decode the next piece of the stream; returns ``(cd_events, trigger_events)``."""
        buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
        if self._tail:
            buf = np.concatenate([np.frombuffer(self._tail, np.uint8), buf])
        wb = self.word_bytes
        n_full = (buf.shape[0] // wb) * wb
        self._tail = bytes(buf[n_full:])
        if n_full == 0:
            return np.empty(0, EVENT_CD), np.empty(0, EVENT_EXT_TRIGGER)
        words = np.ascontiguousarray(buf[:n_full]).view(self.word_dtype)
        return self._decode_words(words)

    def _decode_words(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cd_parts: list[np.ndarray] = []
        trig_parts: list[np.ndarray] = []
        pos = 0
        n_words = words.shape[0]
        while pos < n_words:
            remaining = n_words - pos
            cd_cap = int(remaining * self.events_per_word_hint) + 4 * KERNEL_CD_HEADROOM
            out_cd = np.empty(cd_cap, EVENT_CD)
            out_trig = np.empty(min(remaining, 1 << 16) + 1, EVENT_EXT_TRIGGER)
            new_pos, n_cd, n_trig = self._run(
                words, pos, self._state, out_cd, out_trig, self.width, self.height
            )
            if new_pos == pos and n_cd == 0 and n_trig == 0:  # pragma: no cover - kernel contract
                raise RuntimeError(f"{self.format_name} decoder made no progress at word {pos}")
            pos = new_pos
            cd_parts.append(out_cd[:n_cd])
            trig_parts.append(out_trig[:n_trig])
        return concat_events(cd_parts, EVENT_CD), concat_events(trig_parts, EVENT_EXT_TRIGGER)


class EventEncoder(ABC):
    """Base class of the streaming RAW encoders.

    ``encode`` may be called many times; each call's events must be time-sorted and not earlier
    than anything encoded before, because RAW streams carry time only as increments.
    """

    format_name: ClassVar[str]
    max_trigger_id: ClassVar[int]

    def __init__(self, width: int, height: int) -> None:
        self.width = int(width)
        self.height = int(height)
        self._last_t = -1

    @abstractmethod
    def _encode(self, cd: np.ndarray, triggers: np.ndarray) -> np.ndarray:
        """Encode validated, sorted events; returns the words (any unsigned dtype)."""

    def encode(self, cd: np.ndarray | None, triggers: np.ndarray | None = None) -> bytes:
        """Encode the next events of the stream and return the bytes to append."""
        cd = np.empty(0, EVENT_CD) if cd is None else np.asarray(cd)
        triggers = np.empty(0, EVENT_EXT_TRIGGER) if triggers is None else np.asarray(triggers)
        self._validate(cd, triggers)
        if cd.shape[0] == 0 and triggers.shape[0] == 0:
            return b""
        words = self._encode(cd, triggers)
        last = max(int(cd["t"][-1]) if cd.shape[0] else -1, int(triggers["t"][-1]) if triggers.shape[0] else -1)
        self._last_t = max(self._last_t, last)
        return words.tobytes()

    def _validate(self, cd: np.ndarray, triggers: np.ndarray) -> None:
        name = f"{self.format_name} encoder"
        if cd.dtype != EVENT_CD:
            raise TypeError(f"{name}: CD events must have dtype EVENT_CD, got {cd.dtype}")
        if triggers.dtype != EVENT_EXT_TRIGGER:
            raise TypeError(f"{name}: triggers must have dtype EVENT_EXT_TRIGGER, got {triggers.dtype}")
        after = max(self._last_t, 0)
        check_cd(cd, width=self.width, height=self.height, after_t=after, who=name)
        check_triggers(triggers, max_id=self.max_trigger_id, after_t=after, who=name)
