"""The registration's estimate of rows left out by max_rows, set by a test.

Tests of intervals and notes run on data where bounding leaves nothing out (one row per person).
The estimate comes from a noisy rows-per-unit histogram (sandbox/metadata.py, dropped_share).
On such data that noise alone reports rows left out in about 1 registration in 25. The
intervals then widen for it, by design, and tests of their coverage or width fail (a notes test
failed in CI that way). Where the estimate is not what a test is about, the test fixes it to the
data's truth. The estimate itself is tested in tests/privacy/test_metadata_estimates.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sandbox import metadata

__all__ = ["rows_left_out"]


@contextmanager
def rows_left_out(share: float) -> Iterator[None]:
    """Every dataset's estimated share of rows left out is `share` while plans are compiled."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metadata, "dropped_share", lambda _stats, _cap: share)
        yield
