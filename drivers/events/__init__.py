"""Event data model (Metavision dtypes) and the Prophesee wire encodings EVT 2.0, 2.1 and 3.0."""

from drivers.events.codec import EventDecoder, EventEncoder
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, HDF5_INDEX, empty_cd, empty_triggers

__all__ = [
    "EVENT_CD",
    "EVENT_EXT_TRIGGER",
    "HDF5_INDEX",
    "EventDecoder",
    "EventEncoder",
    "empty_cd",
    "empty_triggers",
]
