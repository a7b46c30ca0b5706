"""Event file containers: Prophesee RAW (EVT 2.0/2.1/3.0), Prophesee HDF5 (ECF), NPZ and CSV.

Entry points: :func:`open_events` (a reader chosen by extension), :func:`create_writer`, and
:class:`EventsIterator` (OpenEB-style slicing by time window or event count).
"""

from capture.formats.base import EventFileError, EventFileInfo, EventFileReader, EventFileWriter
from capture.formats.iterator import EventsIterator, EventSlice
from capture.formats.registry import create_writer, open_events

__all__ = [
    "EventFileError",
    "EventFileInfo",
    "EventFileReader",
    "EventFileWriter",
    "EventSlice",
    "EventsIterator",
    "create_writer",
    "open_events",
]
