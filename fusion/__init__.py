"""Aligned focal stacks -> all-in-focus image, focal-index/depth map and confidence.

One engine (:func:`fusion.engine.fuse`) over the classical method and the learned one (:mod:`fusion.net`); beside
it the pre-alignment of hand-held stacks, the quality metrics, the evaluation harness with external peers, the
result writer and synthetic stacks with ground truth.
"""
