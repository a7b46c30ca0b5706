"""Acquisition: sweep plans, the capture engine, recordings and their replay, event file formats (imports
:mod:`drivers` only).

The engine places frames and the lens phase on the event clock and cuts the streams into sweeps; the focal stack
object (:mod:`capture.focal_stack`) and its folder layouts live here too, as the data that crosses from
calibration to fusion.
"""
