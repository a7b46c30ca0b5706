"""Stop signals reach their handler outside the signal context, so a handler may take locks."""

import os
import signal
import threading
import time

from app.termination import StopSignal, handling


def test_a_handler_may_take_a_lock_the_main_thread_holds_when_the_signal_comes():
    lock = threading.Lock()
    got: list[tuple[int, bool]] = []

    def handler(signum: int) -> None:
        # Run inside the signal handler, this would wait for the main thread, which waits for it: a deadlock
        # (here bounded, so a broken implementation fails instead of hanging).
        acquired = lock.acquire(timeout=2.0)
        got.append((signum, acquired))
        if acquired:
            lock.release()

    with handling(handler, (signal.SIGUSR1,)):
        with lock:
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.3)  # the main thread runs bytecode while holding the lock
        deadline = time.monotonic() + 5.0
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
    assert got == [(signal.SIGUSR1, True)]


def test_stop_signal_wakes_a_waiter_and_the_previous_handler_comes_back():
    before = signal.getsignal(signal.SIGUSR2)
    stop = StopSignal()
    with handling(stop, (signal.SIGUSR2,)):
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        assert stop.wait(5.0)
    assert stop.name == "SIGUSR2"
    assert signal.getsignal(signal.SIGUSR2) is before
