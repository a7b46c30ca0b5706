"""The well-formed files every fuzz case starts from, written deterministically by focalrig's own writers.

Seeds are small (a few thousand events, a 64x48 frame camera) so that a random byte flip lands in headers,
chunk tables and attribute heaps often, not only in event payload: the structure is where readers break.
Each format focalrig reads from other software has a seed: RAW EVT 2.0, EVT 2.1 (both layouts), EVT 3.0,
Prophesee HDF5 (ECF chunks, triggers, index tables), and a complete recording folder with sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.formats.hdf5 import Hdf5EventWriter
from capture.formats.rawheader import build_raw_header
from capture.recording.writer import RecordingWriter
from drivers.camera import EventChunk, Frame
from drivers.events.evt2 import Evt2Encoder
from drivers.events.evt3 import Evt3Encoder
from drivers.events.synthetic import synthetic_events

#: Event sensor and frame camera of the seeds.
EVENT_SIZE = (320, 240)
FRAME_SIZE = (64, 48)
#: Seed kind -> file or folder name; the extension selects the reader, as on the command line.
SEED_NAMES = {
    "evt2": "evt2.raw",
    "evt21-little": "evt21_little.raw",
    "evt21-legacy": "evt21_legacy.raw",
    "evt3": "evt3.raw",
    "hdf5": "events.hdf5",
    "recording": "recording",
}
_SWEEP_US = 20_000


@dataclass(frozen=True)
class Seed:
    """One well-formed input: its kind (a key of :data:`SEED_NAMES`) and where it was written."""

    kind: str
    path: Path

    @property
    def is_recording(self) -> bool:
        return self.kind == "recording"


def _events(n: int = 6000, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """~60 ms of sensor-like events with 1 kHz trigger edges, starting past one EVT 3 time wrap."""
    cd, trig = synthetic_events(n, *EVENT_SIZE, rate=1e5, seed=seed)
    offset = (1 << 24) + 12_345  # beyond 2^24 µs: the streams start with a TIME_HIGH wrap
    cd["t"] += offset
    trig["t"] += offset
    return cd, trig


def _evt21_words(evt2_words: np.ndarray, layout: str) -> bytes:
    """EVT 2.1 bytes from EVT 2.0 words: each CD word becomes a vector word of one pixel (mask 1)."""
    first = evt2_words.astype(np.uint64)
    kind = first >> np.uint64(28)
    second = np.where(kind <= 1, np.uint64(1), np.uint64(0))
    if layout == "little":
        return ((first << np.uint64(32)) | second).astype("<u8").tobytes()
    return np.stack([first, second], axis=1).astype("<u4").tobytes()


def write_raw_seeds(folder: Path) -> list[Seed]:
    """The four RAW seeds (EVT 2.0, EVT 2.1 little and legacy, EVT 3.0) with OpenEB headers."""
    cd, trig = _events()
    w, h = EVENT_SIZE
    extra = {"serial_number": "FUZZ0001", "generation": "4.2"}
    seeds = []
    evt3 = folder / SEED_NAMES["evt3"]
    evt3.write_bytes(build_raw_header("EVT3", w, h, extra) + Evt3Encoder(w, h).encode(cd, trig))
    seeds.append(Seed("evt3", evt3))
    evt2_payload = Evt2Encoder(w, h).encode(cd, trig)
    evt2 = folder / SEED_NAMES["evt2"]
    evt2.write_bytes(build_raw_header("EVT2", w, h, extra) + evt2_payload)
    seeds.append(Seed("evt2", evt2))
    words = np.frombuffer(evt2_payload, "<u4")
    for layout in ("little", "legacy"):
        kind = f"evt21-{layout}"
        header = (f"% evt 2.1\n% format EVT21;endianness={layout};height={h};width={w}\n% geometry {w}x{h}\n"
                  "% serial_number FUZZ0001\n% end\n").encode("ascii")
        path = folder / SEED_NAMES[kind]
        path.write_bytes(header + _evt21_words(words, layout))
        seeds.append(Seed(kind, path))
    return seeds


def write_hdf5_seed(folder: Path) -> Seed:
    """A Prophesee HDF5 file of two ECF chunks (one full, one partial), triggers and both index tables."""
    cd, trig = _events(20_000, seed=11)
    path = folder / SEED_NAMES["hdf5"]
    with Hdf5EventWriter(path, *EVENT_SIZE, metadata={"serial_number": "FUZZ0001", "generation": "4.2"}) as w:
        w.write(cd[:9000], trig[trig["t"] <= cd["t"][8999]])
        w.write(cd[9000:], trig[trig["t"] > cd["t"][8999]])
    return Seed("hdf5", path)


def write_recording_seed(folder: Path) -> Seed:
    """A complete recording folder: events, frames, triggers, lens samples and three triangle sweeps."""
    path = folder / SEED_NAMES["recording"]
    path.mkdir()
    cd, trig = _events(6000, seed=5)
    t_start = int(cd["t"][0])
    n_sweeps = 3
    commanded = {"waveform": "triangle", "low_dpt": 0.0, "high_dpt": 4.0, "frequency_hz": 1e6 / _SWEEP_US}
    writer = RecordingWriter(path, uid="f" * 32, plan={"name": "fuzz"}, describe={}, event_geometry=EVENT_SIZE,
                             raw_format="EVT3", raw_header={"serial_number": "FUZZ0001"}, calibration_path=None,
                             extra={"event_geometry": list(EVENT_SIZE), "frame_geometry": list(FRAME_SIZE),
                                    "commanded": commanded, "soft_synced": False})
    writer.write_events(EventChunk(cd, trig, int(cd["t"][-1]) + 1))
    rng = np.random.default_rng(3)
    frames = []
    for i in range(n_sweeps * 4):
        t0 = t_start + i * (_SWEEP_US // 4)
        image = rng.integers(0, 256, (FRAME_SIZE[1], FRAME_SIZE[0], 3), dtype=np.uint8)
        frames.append(Frame(image, i, t0, t0 + 2000, "event", 0.5 + (i % 4)))
    writer.write_frames(frames, ["strobe"] * len(frames))
    t_lens = np.arange(t_start, t_start + n_sweeps * _SWEEP_US, 1000, dtype=np.float64)
    writer.write_lens(np.column_stack([t_lens, np.zeros_like(t_lens), np.linspace(0, 4, t_lens.size),
                                       np.full_like(t_lens, 30.0)]))
    for k in range(n_sweeps):
        a, b = t_start + k * _SWEEP_US, t_start + (k + 1) * _SWEEP_US
        in_sweep = (cd["t"] >= a) & (cd["t"] < b)
        samples = np.column_stack([np.linspace(a, b, 5), np.array([0.0, 2.0, 4.0, 2.0, 0.0])])
        writer.write_sweep({"index": k, "t_start_us": a, "t_end_us": b, "t0_us": float(a), "soft_synced": 0,
                            "n_events": int(in_sweep.sum()), "n_triggers": 0, "n_frames": 4}, samples)
    writer.close("success", None, {})
    return Seed("recording", path)


def write_seeds(folder: Path) -> list[Seed]:
    """Every seed, written into ``folder`` (which must exist), in :data:`SEED_NAMES` order."""
    seeds = {s.kind: s for s in [*write_raw_seeds(folder), write_hdf5_seed(folder), write_recording_seed(folder)]}
    return [seeds[kind] for kind in SEED_NAMES]
