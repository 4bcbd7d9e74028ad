"""appliance.heap: the server's collector policy (both serve commands apply it)."""

from __future__ import annotations

import gc

from appliance.heap import SERVER_GEN0_THRESHOLD, raise_young_threshold


def test_the_young_threshold_is_raised_and_the_older_ratios_stay() -> None:
    before = gc.get_threshold()
    try:
        raise_young_threshold()
        assert gc.get_threshold() == (SERVER_GEN0_THRESHOLD, before[1], before[2])
        raise_young_threshold(12_345)
        assert gc.get_threshold() == (12_345, before[1], before[2])
    finally:
        gc.set_threshold(*before)
