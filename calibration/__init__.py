"""Recording -> aligned focal stacks: the rig's calibration, and the sweeps sliced with it.

The calibration (event->RGB geometry, lens lag, focus breathing) is estimated from recordings and kept as a
versioned JSON file with a PNG report; a sweep is then sliced by time -> focal power -> focal index into a
focal stack of aligned frames and event counts.
"""
