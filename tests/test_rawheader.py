"""RAW header parsing and writing against OpenEB 5.1.1's documented resolution rules."""

import datetime as dt

import pytest

from capture.formats.rawheader import RawHeaderError, build_raw_header, parse_raw_header, split_header
from tests.reference import shared_event_file


def hdr(*lines: str, end: bool = True, payload: bytes = b"\x00\x80") -> bytes:
    text = "".join(f"% {ln}\n" for ln in lines) + ("% end\n" if end else "")
    return text.encode() + payload


def test_modern_header_format_and_geometry():
    h = parse_raw_header(hdr("format EVT3;height=720;width=1280", "geometry 1280x720"))
    assert (h.format, h.width, h.height, h.inferred) == ("EVT3", 1280, 720, [])
    assert h.payload_offset == len(b"% format EVT3;height=720;width=1280\n% geometry 1280x720\n% end\n")


def test_format_alone_without_end_and_crlf():
    data = b"% format EVT3;height=720;width=1280\r\n\x00\x80"
    h = parse_raw_header(data)
    assert (h.format, h.width, h.height) == ("EVT3", 1280, 720)
    assert h.payload_offset == data.index(b"\x00")


def test_legacy_header_uses_system_id_table_and_reports_it():
    h = parse_raw_header(hdr("evt 3.0", "system_ID 48", end=False))
    assert (h.format, h.width, h.height) == ("EVT3", 1280, 720)
    assert any("system_ID 48" in note for note in h.inferred)
    assert h.generation == "4.1" and any("generation 4.1" in note for note in h.inferred)
    h = parse_raw_header(hdr("evt 3.0", "system_ID 21", end=False))  # EVT3 data, Gen3 geometry
    assert (h.format, h.width, h.height) == ("EVT3", 640, 480)
    assert parse_raw_header(hdr("format EVT3;height=720;width=1280", "sensor_generation 4.2")).generation == "4.2"
    assert parse_raw_header(hdr("format EVT3;height=720;width=1280")).generation is None


def test_system_id_alone_gives_default_format():
    h = parse_raw_header(hdr("system_ID 26"))
    assert (h.format, h.width, h.height) == ("EVT2", 1280, 720)


def test_evt_without_known_system_is_accepted_with_geometry_and_flagged():
    h = parse_raw_header(hdr("evt 3.0", "geometry 1280x720"))
    assert (h.format, h.width, h.height) == ("EVT3", 1280, 720)
    assert any("OpenEB 5.1.1 rejects" in note for note in h.inferred)


def test_evt_without_geometry_needs_user_geometry():
    with pytest.raises(RawHeaderError, match="--width and --height"):
        parse_raw_header(hdr("evt 3.0"))
    h = parse_raw_header(hdr("evt 3.0"), width=320, height=240)
    assert (h.width, h.height) == (320, 240)
    assert "geometry 320x240 given by the user (the header has none)" in h.inferred


def test_system_id_ignored_for_other_integrators():
    with pytest.raises(RawHeaderError, match="no event format"):
        parse_raw_header(hdr("integrator_name Acme", "system_ID 48"))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (("format EVT3;height=720;width=1280", "geometry 640x480"), "contradicts"),
        (("format EVT4;height=720;width=1280",), "unsupported event format"),
        (("evt 9.9",), "unknown event format"),
        (("geometry 1280by720", "evt 3.0"), "unreadable"),
        (("date 2020-01-01",), "no event format"),
    ],
)
def test_bad_headers_explain_the_problem(lines, message):
    with pytest.raises(RawHeaderError, match=message):
        parse_raw_header(hdr(*lines))


def test_no_header_is_rejected():
    with pytest.raises(RawHeaderError, match="no Prophesee RAW header"):
        parse_raw_header(b"\x00\x80\x01\x60")


def test_evt21_endianness_rules():
    assert parse_raw_header(hdr("format EVT21;endianness=legacy;height=720;width=1280")).endianness == "legacy"
    assert parse_raw_header(hdr("format EVT21;height=320;width=320", "endianness little")).endianness == "little"
    legacy = parse_raw_header(hdr("evt 2.1", "system_ID 48"))  # 0x30 < 0x37
    assert legacy.endianness == "legacy"
    assert parse_raw_header(hdr("format EVT21;height=320;width=320")).endianness == "little"
    assert parse_raw_header(hdr("format EVT3;height=720;width=1280")).endianness is None


def test_repeated_key_last_wins_and_extra_spaces_vanish():
    h = parse_raw_header(hdr("serial_number  A   B ", "serial_number C", "format EVT2;height=480;width=640"))
    assert h.fields["serial_number"] == "C"
    assert ("serial_number", "A B") in h.pairs


def test_written_header_round_trips_sorted_with_end():
    when = dt.datetime(2026, 1, 15, 10, 0, 0)
    data = build_raw_header("EVT3", 1280, 720, {"generation": "4.2"}, date=when)
    assert data == (
        b"% date 2026-01-15 10:00:00\n% evt 3.0\n% format EVT3;height=720;width=1280\n"
        b"% generation 4.2\n% geometry 1280x720\n% end\n"
    )
    h = parse_raw_header(data + b"\x25\x20")  # data that starts like a header line stays data
    assert h.payload_offset == len(data)
    assert (h.format, h.width, h.height) == ("EVT3", 1280, 720)
    evt2 = parse_raw_header(build_raw_header("EVT2", 640, 480))
    assert (evt2.format, evt2.width, evt2.height) == ("EVT2", 640, 480)


def test_header_writer_rejects_multiline_values():
    with pytest.raises(ValueError, match="single"):
        build_raw_header("EVT3", 1280, 720, {"note": "a\nb"})


@pytest.mark.parametrize(
    ("name", "fmt", "geometry", "offset"),
    [
        ("expelliarmus_evt3_sample.raw", "EVT3", (1280, 720), 166),
        ("expelliarmus_evt2_sample.raw", "EVT2", (640, 480), 164),
        ("ros_event_camera_codecs_evt3_trigger.raw", "EVT3", (1280, 720), 62),
    ],
)
def test_shared_files_headers(name, fmt, geometry, offset):
    data = shared_event_file(name).read_bytes()[:65536]
    h = parse_raw_header(data)
    assert (h.format, (h.width, h.height), h.payload_offset) == (fmt, geometry, offset)
    assert split_header(data)[1] == offset
