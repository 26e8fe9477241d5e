"""Confidence intervals over seeds, against values computed by hand."""

import math

import pytest

from tirl.eval.intervals import mean_ci, paired_ci, t975, verdict


def test_three_seeds_by_hand():
    # the GRPO lr=1e-5 probe: 0.594, 0.469, 0.422 -> mean 0.495, s = 0.088899, t(2) = 4.303
    ci = mean_ci([0.594, 0.469, 0.422])
    assert ci.mean == pytest.approx(0.495)
    assert ci.half == pytest.approx(4.303 * 0.088899 / math.sqrt(3), rel=1e-4)  # 0.2209
    assert str(ci) == "0.495 ± 0.221"


def test_t_quantiles():
    assert t975(1) == 12.706 and t975(4) == 2.776 and t975(100) == 1.96
    with pytest.raises(ValueError):
        t975(0)


def test_paired_differences_and_verdicts():
    d = paired_ci([0.6, 0.5, 0.55], [0.4, 0.35, 0.4])  # differences 0.2, 0.15, 0.15
    assert d.mean == pytest.approx(0.5 / 3)
    assert verdict(d) == "reproduced"
    assert verdict(paired_ci([0.3, 0.2, 0.25], [0.4, 0.35, 0.4])) == "not reproduced"
    assert verdict(paired_ci([0.5, 0.3, 0.4], [0.4, 0.35, 0.4])) == "inconclusive"
    assert verdict(mean_ci([0.5])) == "inconclusive (one seed)"
    assert math.isnan(mean_ci([]).mean) and str(mean_ci([])) == "-"
    with pytest.raises(ValueError):
        paired_ci([1.0], [1.0, 2.0])
