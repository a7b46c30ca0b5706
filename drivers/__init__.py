"""Device layer: one module per device (focus lens, event camera, frame camera), real or simulated.

The interfaces capture relies on are :mod:`drivers.focus` and :mod:`drivers.camera`; :mod:`drivers.registry`
turns a device config into a device and :class:`drivers.rig.Rig` holds the three together; :mod:`drivers.sim`
simulates the whole rig (lens drivers on virtual serial ports, the scene, both cameras).

Lowest layer of focalrig; it imports no other focalrig package. The event-camera wire encodings
(EVT 2.0 / 2.1 / 3.0) live here in :mod:`drivers.events` because they are what the camera speaks;
file containers built on them live one layer up in :mod:`capture.formats`.
"""
