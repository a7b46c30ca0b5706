"""Recordings: one folder per capture (events RAW, frames HDF5, sync HDF5, run log, metadata) — writer and reader.

Layout and crash-safety rules are in :mod:`capture.recording.layout`; :class:`Recording` opens a folder (or a bare
event file) for reading, :class:`RecordingWriter` is what the capture engine writes through.
"""

from capture.recording.layout import RecordingError, create_recording_dir, preflight
from capture.recording.reader import FrameStore, Recording
from capture.recording.writer import RecordingWriter

__all__ = ["FrameStore", "Recording", "RecordingError", "RecordingWriter", "create_recording_dir", "preflight"]
