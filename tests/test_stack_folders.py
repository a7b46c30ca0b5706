"""Focal stacks as folders (EventStackMFF / StackMFF-V2 layouts): reading, writing, discovery and bad input."""

import json

import cv2
import numpy as np
import pytest

from capture.focal_stack import FocalStack
from capture.stack_folders import (
    StackFolderError,
    decode_event_png,
    discover_datasets,
    discover_pairs,
    encode_event_png,
    natural_key,
    read_pair,
    read_stack_folder,
    write_eventstackmff,
    write_stackmff,
)


def _stack(n=3, h=12, w=16, color=True, dtype=np.uint8, events=True):
    rng = np.random.default_rng(1)
    peak = np.iinfo(dtype).max
    frames = rng.integers(0, peak, (n, h, w, 3) if color else (n, h, w), dtype=dtype)
    ev = None
    if events:
        ev = np.zeros((n, 2, h, w), np.uint16)
        ev[:, 1, :4] = 2          # positive (ON) only
        ev[:, 0, 6:9] = 1         # negative (OFF) only
        ev[:, :, 10:] = 1         # both: net zero -> "none" in the ternary PNG
    gt = {"all_in_focus": frames[0].copy(), "focal_index": np.full((h, w), 1.5, np.float32)}
    return FocalStack(frames, np.linspace(0.5, 2.5, n), ev, gt, name="s1")


def test_natural_sort():
    names = ["10.png", "2.png", "1.png", "img_11.jpg", "img_9.jpg"]
    assert sorted(names, key=natural_key) == ["1.png", "2.png", "10.png", "img_9.jpg", "img_11.jpg"]


def test_eventstackmff_round_trip(tmp_path):
    stack = _stack()
    write_eventstackmff(stack, tmp_path / "DS")
    assert (tmp_path / "DS/image_stack/s1/1.png").is_file() and (tmp_path / "DS/event_stack/s1/3.png").is_file()
    # The colour convention on disk: positive = red, negative = blue, none = white (BGR as OpenCV reads it).
    ev_png = cv2.imread(str(tmp_path / "DS/event_stack/s1/1.png"))
    assert ev_png[0, 0].tolist() == [0, 0, 255] and ev_png[7, 0].tolist() == [255, 0, 0]
    assert ev_png[11, 0].tolist() == [255, 255, 255]
    (entry,) = discover_datasets(tmp_path, ["DS"])
    back = entry.load()
    assert np.array_equal(back.frames, stack.frames)
    np.testing.assert_allclose(back.focal_powers_dpt, stack.focal_powers_dpt)
    assert np.array_equal(back.ground_truth["all_in_focus"], stack.ground_truth["all_in_focus"])
    np.testing.assert_array_equal(back.ground_truth["focal_index"], 1.5)
    expected = np.zeros_like(stack.events)
    expected[:, 1, :4] = 1
    expected[:, 0, 6:9] = 1
    assert np.array_equal(back.events, expected)   # 0/1 per polarity: the PNG keeps only the sign


def test_stackmff_round_trip_16_bit_grey(tmp_path):
    stack = _stack(color=False, dtype=np.uint16, events=False)
    write_stackmff(stack, tmp_path / "V2")
    (entry,) = discover_datasets(tmp_path, ["V2"])
    back = entry.load()
    assert back.frames.dtype == np.uint16 and back.frames.ndim == 3
    assert np.array_equal(back.frames, stack.frames)


def test_npy_event_counts_and_descending_powers(tmp_path):
    stack = _stack(events=False)
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k + 1}.png"), stack.frames[k][..., ::-1])
        np.save(tmp_path / f"ev_{k + 1}.npy", np.full((2, 12, 16), k, np.uint16))
    (tmp_path / "focal_powers.txt").write_text("3.0 2.0 1.0")
    evdir = tmp_path / "ev"
    evdir.mkdir()
    for p in tmp_path.glob("ev_*.npy"):
        p.rename(evdir / p.name)
    back = read_stack_folder(tmp_path, evdir)
    assert back.meta["reversed"] is True
    np.testing.assert_allclose(back.focal_powers_dpt, [1.0, 2.0, 3.0])
    assert np.array_equal(back.frames[0], stack.frames[2])
    assert back.events[0, 0, 0, 0] == 2


def test_without_sidecar_planes_are_indices_and_reference_is_set_aside(tmp_path):
    stack = _stack(events=False)
    for name, k in (("1.jpg", 0), ("2.jpg", 1), ("10.jpg", 2)):
        cv2.imwrite(str(tmp_path / name), stack.frames[k])
    cv2.imwrite(str(tmp_path / "expected.jpg"), stack.frames[0])
    back = read_stack_folder(tmp_path)
    assert back.n_planes == 3 and back.meta["focal_powers"] == "indices"
    assert back.meta["files"] == ["1.jpg", "2.jpg", "10.jpg"]
    assert back.meta["reference"].endswith("expected.jpg")
    np.testing.assert_array_equal(back.focal_powers_dpt, [0, 1, 2])


def test_pairs_from_ab_folders_and_from_suffixes(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for side in "AB":
        (tmp_path / "P" / side).mkdir(parents=True)
        for i in (1, 2):
            cv2.imwrite(str(tmp_path / "P" / side / f"{i}.png"), img)
    (tmp_path / "F").mkdir()
    for name in ("x-01-A.jpg", "x-01-B.jpg", "y_A.png", "y_B.png", "lonely-A.png"):
        cv2.imwrite(str(tmp_path / "F" / name), img)
    pairs = discover_pairs(tmp_path, ["P", "F"])
    assert [(d, n) for d, n, _, _ in pairs] == [("P", "1"), ("P", "2"), ("F", "x-01"), ("F", "y")]
    assert read_pair(pairs[2][2], pairs[2][3]).n_planes == 2


def test_event_png_codec_is_symmetric():
    counts = np.zeros((2, 4, 4), np.uint16)
    counts[1, 0] = 5
    counts[0, 1] = 1
    png = encode_event_png(counts)
    assert png[0, 0].tolist() == [255, 0, 0] and png[1, 0].tolist() == [0, 0, 255]


def _write(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        cv2.imwrite(str(folder / f"{i + 1}.png"), img)
    return folder


@pytest.mark.parametrize("make, match", [
    (lambda d: d.mkdir(), "no images"),
    (lambda d: _write(d, [np.zeros((8, 8), np.uint8)]), "only one image"),
    (lambda d: _write(d, [np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8)]), "differs from 1.png"),
    (lambda d: _write(d, [np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint16)]), "bit depth"),
    (lambda d: (_write(d, [np.zeros((8, 8), np.uint8)]), (d / "2.png").write_bytes(b"not a png")), "2.png: unreadable"),
])
def test_bad_folders_give_one_clear_error(tmp_path, make, match):
    folder = tmp_path / "stack"
    make(folder)
    with pytest.raises(StackFolderError, match=match):
        read_stack_folder(folder)


def test_bad_event_slices(tmp_path):
    folder = _write(tmp_path / "img", [np.zeros((8, 8), np.uint8)] * 2)
    grey = _write(tmp_path / "grey", [np.zeros((8, 8), np.uint8)] * 2)
    with pytest.raises(StackFolderError, match="grayscale event image; polarity is lost"):
        read_stack_folder(folder, grey)
    few = _write(tmp_path / "few", [np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(StackFolderError, match="1 event slices for 2 images"):
        read_stack_folder(folder, few)
    with pytest.raises(StackFolderError, match="event slice is 9x8"):
        decode_event_png(_write(tmp_path / "big", [np.zeros((8, 9, 3), np.uint8)]) / "1.png", (8, 8))


def test_bad_sidecar_and_layout(tmp_path):
    folder = _write(tmp_path / "s", [np.zeros((8, 8), np.uint8)] * 2)
    (folder / "focal_powers.json").write_text(json.dumps([1.0, 2.0, 3.0]))
    with pytest.raises(StackFolderError, match="3 focal powers for 2 images"):
        read_stack_folder(folder)
    with pytest.raises(StackFolderError, match="neither image_stack"):
        discover_datasets(tmp_path, ["s"])


def test_planes_are_decoded_on_several_threads_in_order_and_the_first_bad_file_is_named(tmp_path, monkeypatch):
    """Decoding runs in OpenCV without the GIL, so a stack's PNGs are read a thread per core (start-up of
    ``focalrig predict``); the result and the error are those of reading one by one."""
    import threading

    import capture.stack_folders as folders

    monkeypatch.setattr(folders.os, "cpu_count", lambda: 4)
    frames = [np.full((8, 8, 3), 10 * i, np.uint8) for i in range(1, 9)]
    folder = _write(tmp_path / "stack", frames)
    threads, real_read = set(), folders.read_image
    both_running = threading.Barrier(2, timeout=10)

    def read(path):
        threads.add(threading.get_ident())
        if path.name in ("1.png", "2.png"):
            both_running.wait()  # the first two are decoded at the same time, or this times out
        return real_read(path)

    monkeypatch.setattr(folders, "read_image", read)
    stack = read_stack_folder(folder)
    assert len(threads) >= 2
    assert np.array_equal(stack.frames, np.stack([f[..., ::-1] for f in frames]))  # in order, BGR → RGB
    for bad in ("3.png", "7.png"):
        (folder / bad).write_bytes(b"not a png")
    monkeypatch.setattr(folders, "read_image", real_read)
    with pytest.raises(StackFolderError, match=r"3\.png: unreadable"):
        read_stack_folder(folder)
