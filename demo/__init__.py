"""``make demo``: the demo models' data, a live run against real servers, and its chart."""
