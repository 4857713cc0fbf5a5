"""Tiling: the rule table, fused depthwise tiling (FDT), fused feature-map tiling (FFMT), path search."""
