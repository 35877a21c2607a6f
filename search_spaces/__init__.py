"""Search spaces as data, one module per method (see tuning/sweep/spaces.py for how they become Tune's)."""

from search_spaces import active_loop, kd, supervised

MODULES = {"supervised": supervised, "kd": kd, "active_loop": active_loop}
