import numpy as np

from cyclone.series import Points, ReadResult


def test_points_from_pairs_roundtrip():
    p = Points.from_pairs([(10, 1.5), (20, -2.0)])
    assert p.timestamps.dtype == np.int64
    assert p.pairs() == [(10, 1.5), (20, -2.0)]


def test_read_result_datapoints_skip_gaps():
    r = ReadResult(None, 100, 140, 10, np.array([1.0, np.nan, 3.0, np.nan]))
    assert r.datapoints() == [(100, 1.0), (120, 3.0)]
    assert r.values_or_none() == [1.0, None, 3.0, None]
