"""Aligned focal stacks -> all-in-focus image, focal-index/depth map and confidence (issues 6 and 7)."""
