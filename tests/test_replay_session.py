"""Replay playback decoding: the events under the cursor are exactly the recording's, however playback moves."""

import numpy as np
import pytest

from app.gui import replay
from app.gui.replay import ReplaySession
from drivers.camera import Frame
from drivers.events.dtypes import EVENT_EXT_TRIGGER, make_cd
from drivers.ipc import recv, send
from tests.calibration_recordings import write_recording


@pytest.fixture
def dense_recording(tmp_path):
    """1.2 s of 800 k events (many sharing a µs, so chunks split inside a timestamp) and a few frames."""
    rng = np.random.default_rng(3)
    n, w, h = 800_000, 64, 48
    cd = make_cd(rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n),
                 np.sort(rng.integers(0, 1_200_000, n)))
    frames = [Frame(np.full((h, w, 3), k, np.uint8), k, k * 100_000, k * 100_000 + 5_000, "event") for k in range(12)]
    folder = write_recording(tmp_path / "rec", cd, np.empty(0, EVENT_EXT_TRIGGER), frames, (w, h), (w, h))
    return folder, cd


def canonical(cd):
    """Events in (t, y, x, p) order: the RAW encoding may reorder events within one µs, nothing else."""
    return np.sort(cd, order=["t", "y", "x", "p"])


def expected(cd, t0, t1):
    a, b = np.searchsorted(cd["t"], [t0, t1])
    return canonical(cd[a:b])


def test_playback_windows_match_the_recording_forwards_backwards_and_after_a_loop(dense_recording, monkeypatch):
    monkeypatch.setattr(replay, "REPLAY_BLOCK_BYTES", 16 * 1024)  # many blocks: fills continue across them
    monkeypatch.setattr(replay, "LOOKAHEAD_US", 20_000)
    folder, cd = dense_recording
    session = ReplaySession(folder)
    cursors = [*range(10_000, 1_150_000, 7_300), 400_000, 415_000, *range(20_000, 300_000, 33_000)]
    for t in cursors:  # forwards (sequential fills), a jump back, then a loop from the start
        session.seek(t)
        got = session.latest_events(10_000)
        assert np.array_equal(canonical(got), expected(cd, session.t_us - 10_000, session.t_us)), t
    session.close()


def test_ipc_round_trip_keeps_arrays_equal_and_writable():
    import multiprocessing
    import threading

    a, b = multiprocessing.Pipe()
    obj = {"frames": [np.arange(300_000, dtype=np.float32).reshape(500, 600) + k for k in range(3)],
           "cd": make_cd([1, 2], [3, 4], [0, 1], [5, 6]), "meta": ("sweep", 7)}
    sender = threading.Thread(target=send, args=(a, obj))  # a pipe holds ~64 KB: the peer must read meanwhile
    sender.start()
    got = recv(b)
    sender.join()
    assert got["meta"] == ("sweep", 7) and np.array_equal(got["cd"], obj["cd"])
    assert all(np.array_equal(x, y) for x, y in zip(got["frames"], obj["frames"], strict=True))
    got["frames"][0][0, 0] = -1.0  # writable, like a plainly unpickled array
    assert obj["frames"][0][0, 0] == 0.0
