"""Tiling: the rule table, fused depthwise tiling (FDT), fused feature-map tiling (FFMT), path search."""

# What the tiling search can minimise (see search.py); here so that the CLI can list them
# without importing the search.
OBJECTIVES: tuple[str, ...] = ("total", "head")
