"""Live camera backends without the hardware: OpenCV on a real video file, Basler on pylon's camera emulator,
Prophesee's decode path on real EVT3 bytes and its missing-SDK error."""

import os

import cv2
import numpy as np
import pytest

from app.config import load_config
from drivers.camera import CameraError, NotSupportedError
from drivers.opencv_camera import OpenCVCamera
from drivers.registry import make_frame_camera, open_rig

FPS = 25.0
# pypylon's SWIG types trip a DeprecationWarning on import; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:builtin type:DeprecationWarning")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[str, list[np.ndarray]]:
    """A 12-frame MJPG .avi whose frame k is a flat colour that encodes k (plus a gradient, so MJPG has detail)."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    assert writer.isOpened()
    frames = []
    for k in range(12):
        rgb = np.zeros((48, 64, 3), np.uint8)
        rgb[..., 0] = 20 * k                     # red channel carries the index
        rgb[..., 1] = np.arange(64, dtype=np.uint8)[None, :] * 2
        rgb[..., 2] = 200
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        frames.append(rgb)
    writer.release()
    return str(path), frames


def read_all(cam, limit=50):
    out = []
    while len(out) < limit:
        f = cam.read(2.0)
        if f is None:
            break
        out.append(f)
    return out


def test_opencv_replays_a_video_file_in_order_as_rgb_on_the_host_clock(video):
    path, expected = video
    with OpenCVCamera(path, realtime=False) as cam:
        assert cam.geometry == (64, 48) and cam.frame_rate_hz == pytest.approx(FPS)
        assert cam.identity.serial == path and cam.identity.extra["kind"] == "video file"
        cam.configure(exposure_us=10_000, frame_rate_hz=FPS)
        cam.start()
        frames = read_all(cam)
        assert cam.ended and cam.read(0.1) is None
    assert [f.index for f in frames] == list(range(12))
    for f, rgb in zip(frames, expected, strict=True):
        assert f.clock == "host" and f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert np.abs(f.image.astype(int) - rgb).mean() < 4  # MJPG is lossy, but RGB order and content hold
        assert f.exposure_end_us - f.exposure_start_us == 10_000
    starts = np.array([f.exposure_start_us for f in frames])
    np.testing.assert_allclose(np.diff(starts), 1e6 / FPS, atol=1)  # the file's clock, not decode timing


def test_opencv_stop_rewinds_a_file_and_external_trigger_is_refused(video):
    path, _ = video
    with OpenCVCamera(path, realtime=True) as cam:
        with pytest.raises(NotSupportedError, match="no hardware trigger"):
            cam.configure(exposure_us=1000, frame_rate_hz=FPS, trigger="external")
        cam.start()
        first = cam.read(2.0)
        cam.stop()
        cam.start()
        again = cam.read(2.0)
    assert first.index == again.index == 0
    assert np.array_equal(first.image, again.image)


def test_opencv_missing_file_and_camera_errors_name_the_source(tmp_path):
    with pytest.raises(CameraError, match=r"nope\.avi does not exist"):
        OpenCVCamera(str(tmp_path / "nope.avi"))
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video")
    with pytest.raises(CameraError, match="cannot open video file"):
        OpenCVCamera(str(junk))


def test_opencv_backend_through_the_config_with_the_simulated_event_camera(video):
    path, _ = video
    cfg = load_config(overrides=["sim.realtime=false", "sim.rgb_size=[32,24]", "sim.event_size=[32,24]",
                                 'lens.port="optosim://cam-opencv"', 'frame_camera.backend="opencv"',
                                 f'frame_camera.source="{path}"', "frame_camera.realtime=false"])
    with open_rig(cfg) as rig:
        assert isinstance(rig.frame_camera, OpenCVCamera) and rig.sim is not None
        assert rig.describe()["frame_camera"]["geometry"] == [64, 48]
    cfg_missing = cfg.model_copy(update={"frame_camera": cfg.frame_camera.model_copy(update={"source": "/no/file"})})
    with pytest.raises(CameraError, match="/no/file"):
        make_frame_camera(cfg_missing.frame_camera)


# -- Basler (pypylon's camera emulator) --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pylon_emulator():
    os.environ.setdefault("PYLON_CAMEMU", "1")  # must precede pypylon's first import
    pytest.importorskip("pypylon", reason="pypylon not installed (optional extra: pip install '.[basler]')")
    from drivers.basler import BaslerCamera

    return BaslerCamera


def test_basler_emulator_free_run_frames_carry_block_ids_and_exposure(pylon_emulator):
    with pylon_emulator("0815-0000", pixel_format="Mono8") as cam:
        assert cam.identity.vendor == "Basler" and cam.identity.serial == "0815-0000"
        cam._set("Width", 64)
        cam._set("Height", 48)
        assert cam.geometry == (64, 48)
        cam.configure(exposure_us=2000, frame_rate_hz=200)
        assert cam._get("ExposureTime") == 2000 and cam._get("TriggerMode") == "Off"
        assert cam._get("AcquisitionFrameRate") == 200
        cam.start()
        frames = [cam.read(2.0) for _ in range(3)]
        cam.stop()
        assert cam.read(0.01) is None
    assert [f.index for f in frames] == [0, 1, 2]
    for f in frames:
        assert f.image.shape == (48, 64) and f.image.dtype == np.uint8
        assert f.clock == "host" and f.exposure_end_us - f.exposure_start_us == 2000  # the emulator sends no TimeStamp
    # the emulator's test image is a ramp that moves by one grey level per frame
    assert [int(f.image[0, 1]) - int(f.image[0, 0]) for f in frames] == [1, 1, 1]
    assert np.diff([int(f.image[0, 0]) for f in frames]).tolist() == [1, 1]


def test_basler_external_trigger_waits_for_line1_and_strobe_line_is_exposure_active(pylon_emulator):
    with pylon_emulator(pixel_format="RGB8Packed", trigger_line="Line1", strobe_line="Line2") as cam:
        assert cam._get("LineSource") == "ExposureActive" and cam._get("LineMode") == "Output"
        cam.configure(exposure_us=1000, frame_rate_hz=30, trigger="external")
        assert (cam._get("TriggerSelector"), cam._get("TriggerMode"), cam._get("TriggerSource")) == \
            ("FrameStart", "On", "Line1")
        cam.start()
        assert cam.read(0.2) is None  # nothing drives Line1 on the emulator: no frame, no error
        cam.stop()
        cam.configure(exposure_us=1000, frame_rate_hz=30)
        cam.start()
        frame = cam.read(2.0)
    assert frame.image.ndim == 3 and frame.image.shape[2] == 3


def test_basler_errors_name_the_problem(pylon_emulator):
    with pytest.raises(CameraError, match=r"no camera with serial 12345678 found.*0815-0000"):
        pylon_emulator("12345678")
    with pylon_emulator() as cam, pytest.raises(CameraError, match="PixelFormat = Nonsense8; allowed: Mono8"):
        cam._set("PixelFormat", "Nonsense8")


# -- Prophesee (OpenEB) ------------------------------------------------------------------------------------------
@pytest.fixture
def no_openeb(monkeypatch, tmp_path):
    """This process as on a machine without OpenEB: the bindings do not import and no install is found."""
    import sys

    from drivers import openeb

    monkeypatch.setitem(sys.modules, "metavision_hal", None)  # `import metavision_hal` raises ImportError
    for var in openeb.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(openeb, "DEFAULT_PREFIX", tmp_path / "no-openeb")


def test_prophesee_without_openeb_says_how_to_install_it_and_open_rig_leaves_the_lens_safe(no_openeb):
    from drivers.prophesee import PropheseeCamera
    from drivers.sim import get_simulator

    with pytest.raises(CameraError, match=r"prophesee: .*OpenEB.*COMPILE_PYTHON3_BINDINGS=ON") as info:
        PropheseeCamera("")
    assert "\n" not in str(info.value)  # one line
    cfg = load_config(overrides=['lens.port="optosim://cam-prophesee"', 'event_camera.backend="prophesee"'])
    sim = get_simulator("cam-prophesee")
    with pytest.raises(CameraError, match="metavision_hal"):
        open_rig(cfg)
    sim.deliver_pending()  # the last set commands are still on the (virtual) wire
    assert sim.commands()[-3:] == [b"Aw\x00\x00", b"MwDA", b"Aw\x00\x00"]  # the lens was put in its safe state
    assert sim.mode == 1 and sim.dc_raw == 0


def test_raw_chunker_turns_real_evt3_usb_buffers_into_the_same_events_in_chunks():
    """EVT3 bytes of the simulated EVK4, cut into 4 KiB 'USB buffers' regardless of time, through the live path."""
    from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
    from drivers.events.evt3 import Evt3Decoder
    from drivers.prophesee import RawChunker
    from drivers.sim.event_camera import SimEventCamera
    from drivers.sim.rig import SimRig

    rig = SimRig.default((48, 36), sweep_hz=20.0)
    sim_cam = SimEventCamera(rig, chunk_us=7_000)
    sim_cam.enable_trigger_in(rig.strobe_channel)
    sim_cam.enable_trigger_in(rig.sync_channel)
    sim_cam.start()
    source = [sim_cam.read(1.0) for _ in range(12)]  # 84 ms
    stream = b"".join(c.raw for c in source)
    chunker = RawChunker(Evt3Decoder(48, 36), chunk_us=5_000)
    chunks = [c for i in range(0, len(stream), 4096) for c in chunker.feed(stream[i:i + 4096])]
    assert len(chunks) >= 14  # 84 ms at 5 ms per chunk, minus the tail still open
    ends = [c.t_end_us for c in chunks]
    assert all(e % 5_000 == 0 for e in ends) and np.all(np.diff(ends) == 5_000)
    starts = [0, *ends[:-1]]
    for c, t0 in zip(chunks, starts, strict=True):
        assert np.all((c.cd["t"] >= t0) & (c.cd["t"] < c.t_end_us))
        assert np.all((c.triggers["t"] >= t0) & (c.triggers["t"] < c.t_end_us))
    cd_in = concat_events([c.cd for c in source], EVENT_CD)
    trig_in = concat_events([c.triggers for c in source], EVENT_EXT_TRIGGER)
    cd_out = concat_events([c.cd for c in chunks], EVENT_CD)
    trig_out = concat_events([c.triggers for c in chunks], EVENT_EXT_TRIGGER)
    t_last = ends[-1]
    assert np.array_equal(cd_out, cd_in[cd_in["t"] < t_last]) and cd_out.size > 1000
    assert np.array_equal(trig_out, trig_in[trig_in["t"] < t_last]) and trig_out.size > 0
    assert stream.startswith(b"".join(c.raw for c in chunks))  # whole buffers, in order


# -- Prophesee facilities a RAW file device lacks (biases, ROI, trigger-in), mapped onto a stand-in HAL ------------
#: Every HAL name the stand-in below answers to; test_prophesee_hal.py checks each exists in OpenEB 5.1.1.
FAKE_HAL_API = {
    "DeviceDiscovery": ("open", "list"),
    "Device": ("get_i_hw_identification", "get_i_geometry", "get_i_events_stream", "get_i_ll_biases", "get_i_roi",
               "get_i_trigger_in"),
    "I_HW_Identification": ("get_serial", "get_integrator", "get_sensor_info", "get_current_data_encoding_format",
                            "get_header", "get_system_info"),
    "I_Geometry": ("get_width", "get_height"),
    "RawFileHeader": ("get_header_map",),
    "SensorInfo": ("name", "major_version", "minor_version"),
    "I_EventsStream": ("start", "stop", "poll_buffer", "get_latest_raw_data", "log_raw_data", "stop_log_raw_data"),
    "I_LL_Biases": ("get_all_biases", "set", "get_bias_info"),
    "LL_Bias_Info": ("get_bias_allowed_range",),
    "I_ROI": ("Window", "set_window", "enable"),
    "I_TriggerIn": ("get_available_channels", "enable"),
}


class _StandInHal:
    """An EVK4 as OpenEB 5.1.1's HAL presents it, reduced to the calls the backend makes (see FAKE_HAL_API)."""

    def __init__(self, *, facilities: bool = True) -> None:
        from types import SimpleNamespace as NS

        self.calls: list[tuple] = []
        record = self.calls.append
        biases = {"bias_diff_on": 0, "bias_diff_off": 0, "bias_fo": 0, "bias_hpf": 0, "bias_refr": 0}

        def set_bias(name, value):
            record(("bias", name, value))
            return -150 <= value <= 200

        header = {"serial_number": "00050423", "system_ID": "49", "format": "EVT3;height=720;width=1280",
                  "date": "2026-01-01 00:00:00", "plugin_name": "hal_plugin_imx636_evk4"}
        ident = NS(get_serial=lambda: "00050423", get_integrator=lambda: "Prophesee",
                   get_sensor_info=lambda: NS(name="IMX636", major_version=4, minor_version=2),
                   get_current_data_encoding_format=lambda: "EVT3",
                   get_header=lambda: NS(get_header_map=lambda: header),
                   get_system_info=lambda: {"Connection": "USB"})
        ll = NS(get_all_biases=lambda: dict(biases), set=set_bias,
                get_bias_info=lambda name: NS(get_bias_allowed_range=lambda: (-150, 200)))
        roi = NS(set_window=lambda w: record(("roi", w)), enable=lambda on: record(("roi_enable", on)))
        channels = {"MAIN": 0, "AUX": 1}
        trigger_in = NS(get_available_channels=lambda: dict(channels),
                        enable=lambda ch: record(("trigger_in", ch)) or ch != "AUX")
        stream = NS(start=lambda: None, stop=lambda: None, stop_log_raw_data=lambda: None)
        self.device = NS(get_i_hw_identification=lambda: ident,
                         get_i_geometry=lambda: NS(get_width=lambda: 1280, get_height=lambda: 720),
                         get_i_events_stream=lambda: stream,
                         get_i_ll_biases=lambda: ll if facilities else None,
                         get_i_roi=lambda: roi if facilities else None,
                         get_i_trigger_in=lambda: trigger_in if facilities else None)
        self.DeviceDiscovery = NS(open=lambda serial: self.device, list=lambda: ["00050423"])
        self.I_ROI = NS(Window=lambda x, y, w, h: ("Window", x, y, w, h))


def stand_in_camera(monkeypatch, **kw):
    from drivers import prophesee

    hal = _StandInHal(**kw)
    monkeypatch.setattr(prophesee, "import_hal", lambda: hal)
    return hal


def test_prophesee_configured_biases_and_roi_map_onto_the_hal_facilities(monkeypatch):
    from drivers.config import EventCameraConfig
    from drivers.registry import make_event_camera

    hal = stand_in_camera(monkeypatch)
    cfg = EventCameraConfig(backend="prophesee", serial="00050423", biases={"bias_diff_on": 25, "bias_fo": -35},
                            roi=(320, 180, 640, 360))
    with make_event_camera(cfg) as cam:
        assert hal.calls == [("bias", "bias_diff_on", 25), ("bias", "bias_fo", -35),
                             ("roi", ("Window", 320, 180, 640, 360)), ("roi_enable", True)]
        assert cam.identity.serial == "00050423" and cam.identity.model == "Prophesee IMX636"
        assert cam.identity.extra == {"generation": "4.2", "format": "EVT3", "connection": "USB", "system_id": "49"}
        header = cam.raw_header
        assert header["plugin_name"] == "hal_plugin_imx636_evk4" and header["evt"] == "3.0" and "date" not in header
        assert cam.paced and not cam.at_end


def test_prophesee_trigger_in_maps_event_ids_to_hal_channels(monkeypatch):
    from drivers.prophesee import PropheseeCamera

    hal = stand_in_camera(monkeypatch)
    with PropheseeCamera("") as cam:
        cam.enable_trigger_in(0)
        assert hal.calls == [("trigger_in", "MAIN")]
        with pytest.raises(CameraError, match="trigger-in AUX refused to enable"):
            cam.enable_trigger_in(1)
        with pytest.raises(NotSupportedError, match=r"no trigger-in channel 3; it has 0 \(MAIN\), 1 \(AUX\)"):
            cam.enable_trigger_in(3)


def test_prophesee_bias_errors_name_the_bias_and_what_is_allowed(monkeypatch):
    from drivers.prophesee import PropheseeCamera

    stand_in_camera(monkeypatch)
    with PropheseeCamera("") as cam:
        with pytest.raises(CameraError, match=r"unknown bias 'bias_diff_of'; this sensor has bias_diff_off, bias_d"):
            cam.set_biases({"bias_diff_of": 3})
        with pytest.raises(CameraError, match=r"bias bias_hpf = 900 was refused \(range \(-150, 200\)\)"):
            cam.set_biases({"bias_hpf": 900})
        with pytest.raises(CameraError, match="ROI 640x360\\+800\\+0 is not inside the 1280x720 sensor"):
            cam.set_roi(800, 0, 640, 360)


def test_prophesee_camera_without_a_facility_says_which_and_what_to_change(monkeypatch):
    from drivers.prophesee import PropheseeCamera

    stand_in_camera(monkeypatch, facilities=False)
    with PropheseeCamera("") as cam:
        for call, words in ((lambda: cam.set_biases({"bias_fo": 1}), r"no biases \(I_LL_Biases\).*event_camera.biases"),
                            (lambda: cam.set_roi(0, 0, 8, 8), r"no region of interest \(I_ROI\).*event_camera.roi"),
                            (lambda: cam.enable_trigger_in(0), r"no trigger input \(I_TriggerIn\)")):
            with pytest.raises(NotSupportedError, match="prophesee 00050423: this camera has " + words):
                call()


def test_prophesee_raw_file_config_is_one_source_and_prophesee_only():
    from pydantic import ValidationError

    from drivers.config import EventCameraConfig

    assert EventCameraConfig(backend="prophesee", raw_file="rec.raw").raw_file == "rec.raw"
    with pytest.raises(ValidationError, match=r"either event_camera\.serial .* or event_camera\.raw_file"):
        EventCameraConfig(backend="prophesee", serial="00050423", raw_file="rec.raw")
    with pytest.raises(ValidationError, match="raw_file is a prophesee option; this camera is 'sim'"):
        EventCameraConfig(backend="sim", raw_file="rec.raw")
