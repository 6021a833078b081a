"""Pure metric math from additive counts: no I/O; checked against sklearn, fairlearn, scipy."""
