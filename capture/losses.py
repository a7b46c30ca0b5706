"""What a capture lost, and whether that was a large share of it: the figures a lossy run ends with.

A recording can be complete and orderly yet miss much of its data — a slow disk or a loaded machine drops event
chunks and frames from the bounded queues, a camera skips frames. Such a run must not end as a plain
``success``: when more than :data:`LOSS_LIMIT` of its frames or of its events are missing it ends
``success_with_losses``, and the figures go into the recording and the command's last line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Share of frames or of events above which a finished run ends ``success_with_losses``.
LOSS_LIMIT = 0.01


@dataclass(frozen=True)
class Losses:
    """Counts at the end of a capture."""

    frames_written: int = 0
    #: Frame indices missing between the first and the last frame written (camera drops and queue drops).
    frames_missing: int = 0
    #: Frames dated beyond the last event: the event clock never reached them, so they were not written.
    frames_after_events: int = 0
    events_written: int = 0
    events_dropped: int = 0
    event_chunks_dropped: int = 0

    @property
    def frame_share(self) -> float:
        total = self.frames_written + self.frames_missing
        return self.frames_missing / total if total else 0.0

    @property
    def event_share(self) -> float:
        total = self.events_written + self.events_dropped
        return self.events_dropped / total if total else 0.0

    @property
    def large(self) -> bool:
        """More than LOSS_LIMIT of the frames or of the events are missing."""
        return self.frame_share > LOSS_LIMIT or self.event_share > LOSS_LIMIT

    def as_dict(self) -> dict:
        return {**asdict(self), "frame_share": self.frame_share, "event_share": self.event_share,
                "limit": LOSS_LIMIT}

    def summary(self) -> str:
        """One phrase with the figures: "lost 1,372 of 1,633 frames (84.0 %) and 0 of 2,100,000 events (0.0 %)"."""
        frames = self.frames_written + self.frames_missing
        events = self.events_written + self.events_dropped
        text = (f"lost {self.frames_missing:,} of {frames:,} frames ({100 * self.frame_share:.1f} %) and "
                f"{self.events_dropped:,} of {events:,} events ({100 * self.event_share:.1f} %)")
        if self.frames_after_events:
            text += f"; {self.frames_after_events:,} frames dated after the last event were not recorded"
        return text
