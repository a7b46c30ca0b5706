"""The focalrig desktop window (PyQt6 + pyqtgraph): live capture-and-fuse, recording, replay and calibration.

Only this package imports Qt. Widgets drive the Qt-free layers through one object, :class:`app.gui.controller.
RigController`, which owns the rig, the capture engine, the active calibration and the fusion worker; widgets
never touch devices, recordings or the fusion engine directly. Data reaches the screen by pulling: timers read
the newest values from mailboxes filled by worker threads, so a fast stream can never flood the GUI thread.
"""
