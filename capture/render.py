"""ON/OFF accumulation images of CD events, and their export as PNG frames or a video.

A frame at time ``t`` shows the events of ``[t - accumulation, t)``: the last event at a pixel
decides its colour. Frames follow the event clock at ``fps`` (one frame per ``1e6 / fps`` µs of
recording), so slow-motion or fast-forward is just a different ``fps`` at the same accumulation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from capture.formats.base import EventFileReader
from capture.formats.iterator import EventsIterator
from drivers.events.dtypes import EVENT_CD, concat_events

#: Metavision's "dark" look: (background, ON, OFF) as RGB.
PALETTE_DARK = ((30, 37, 52), (216, 223, 236), (64, 126, 201))
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv")


def accumulate(cd: np.ndarray, width: int, height: int, palette=PALETTE_DARK) -> np.ndarray:
    """An RGB ``(height, width, 3)`` uint8 image of ``cd`` (later events overwrite earlier ones).

    Events mark a one-byte label image (0 none, 1 OFF, 2 ON) and one ``take`` turns labels into colours: three
    times faster than writing RGB triplets per event (1.8 vs 5.7 ms for 40 k events at 640x480), which is what
    lets the live view keep its display rate at VGA.
    """
    labels = np.zeros((height, width), np.uint8)
    if cd.shape[0]:
        labels[cd["y"], cd["x"]] = cd["p"].astype(np.uint8) + 1
    lut = np.array([palette[0], *palette[1:][::-1]], np.uint8)  # by label: background, OFF, ON
    return np.take(lut, labels, axis=0)


def accumulation_frames(
    reader: EventFileReader, *, accumulation_us: int, fps: float
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t_end, rgb_frame)`` for each frame period of the recording."""
    period = max(round(1e6 / fps), 1)
    width, height = reader.info.width, reader.info.height
    recent: deque = deque()  # slices still inside the accumulation window
    for sl in EventsIterator(reader, mode="delta_t", delta_t=period):
        recent.append(sl)
        while recent and recent[0].t_end <= sl.t_end - accumulation_us:
            recent.popleft()
        cd = concat_events([r.events for r in recent], EVENT_CD)
        cd = cd[cd["t"] >= sl.t_end - accumulation_us]
        yield sl.t_end, accumulate(cd, width, height)


class FrameSink:
    """Writes RGB frames to a folder of numbered PNGs or to a video file, chosen by ``out``'s suffix."""

    def __init__(self, out: str | Path, fps: float, width: int, height: int) -> None:
        self.out = Path(out)
        self.count = 0
        self._video = None
        if self.out.suffix.lower() in VIDEO_EXTENSIONS:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.out.suffix.lower() == ".mp4" else "MJPG"))
            self._video = cv2.VideoWriter(str(self.out), fourcc, float(fps), (width, height))
            if not self._video.isOpened():
                raise OSError(f"{self.out}: OpenCV cannot write this video format; write PNG frames to a folder")
        else:
            self.out.mkdir(parents=True, exist_ok=True)

    def add(self, rgb: np.ndarray) -> None:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if self._video is not None:
            self._video.write(bgr)
        elif not cv2.imwrite(str(self.out / f"frame_{self.count:06d}.png"), bgr):
            raise OSError(f"{self.out}: cannot write PNG frames there")
        self.count += 1

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
