"""keras_asc.evaluation.stats: t intervals, paired differences, Holm, verdicts, checked by hand."""

import math

import pytest

from keras_asc.evaluation import stats

# t(0.975, df) from tables: df 2 → 4.302653, df 4 → 2.776445.
T975_DF2 = 4.302652729911275
T975_DF4 = 2.7764451051977987


def test_t_interval_of_three_values():
    # mean 2, sd 1 (ddof 1), se 1/√3, half-width 4.302653/√3 = 2.484138.
    out = stats.t_interval([1.0, 2.0, 3.0])
    assert out["n"] == 3 and out["df"] == 2
    assert out["mean"] == pytest.approx(2.0)
    assert out["sd"] == pytest.approx(1.0)
    assert out["se"] == pytest.approx(1 / math.sqrt(3))
    assert out["t"] == pytest.approx(T975_DF2, rel=1e-9)
    assert out["half_width"] == pytest.approx(2.4841377, rel=1e-6)
    assert (out["low"], out["high"]) == (pytest.approx(-0.4841377), pytest.approx(4.4841377))


def test_t_interval_of_five_probe_seeds():
    # 0.30 .. 0.34: mean 0.32, sd √(0.001/4) = 0.0158114, se 0.00707107, half 0.0196324.
    out = stats.t_interval([0.30, 0.31, 0.32, 0.33, 0.34])
    assert out["t"] == pytest.approx(T975_DF4, rel=1e-9)
    assert out["half_width"] == pytest.approx(0.0196324, rel=1e-5)
    assert out["low"] == pytest.approx(0.3003676, rel=1e-6)


def test_single_value_has_no_interval():
    out = stats.t_interval([0.7])
    assert out["mean"] == 0.7 and out["sd"] is None and out["low"] is None


def test_paired_difference_three_seeds_by_hand():
    # a - b = [1, 2, 3]; t = 2 / (1/√3) = 3.4641; for df 2, p = 1 - t / √(t² + 2) = 0.0741799.
    out = stats.paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert out["differences"] == [1.0, 2.0, 3.0]
    assert out["t_stat"] == pytest.approx(math.sqrt(12))
    assert out["p"] == pytest.approx(1 - math.sqrt(12) / math.sqrt(14), rel=1e-9)
    # against a margin of 2 the mean sits on it: t 0, p 1
    at_margin = stats.paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], margin=2.0)
    assert at_margin["t_stat"] == pytest.approx(0.0) and at_margin["p"] == pytest.approx(1.0)


def test_paired_difference_is_paired_not_pooled():
    # A large common seed effect cancels: the differences are all exactly -0.1.
    a = [0.1, 0.5, 0.9]
    b = [0.2, 0.6, 1.0]
    out = stats.paired_difference(a, b)
    assert out["mean"] == pytest.approx(-0.1)
    assert out["sd"] == pytest.approx(0.0, abs=1e-12)
    assert out["p"] == 0.0


def test_paired_difference_rejects_unequal_lengths():
    with pytest.raises(ValueError, match=r"equal length, got \(3,\) and \(2,\)"):
        stats.paired_difference([1, 2, 3], [1, 2])


def test_holm_by_hand():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06.
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # None (no test) is not counted: m = 2; 0.2·2 = 0.4, 0.3·1 raised to 0.4.
    assert stats.holm([0.2, None, 0.3]) == [pytest.approx(0.4), None, pytest.approx(0.4)]
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]


@pytest.mark.parametrize(
    "mean, margin, sign, p_adj, expected",
    [
        (-0.2, 0.0, -1, 0.01, "holds"),
        (+0.2, 0.0, -1, 0.01, "contradicted"),
        (-0.2, 0.0, -1, 0.20, "inconclusive"),
        (-0.01, -0.02, +1, 0.04, "holds"),  # non-inferiority: within 2 pp
        (-0.05, -0.02, +1, 0.04, "contradicted"),
        (-0.2, 0.0, -1, None, "inconclusive"),  # one seed: no test
    ],
)
def test_verdicts_are_symmetric(mean, margin, sign, p_adj, expected):
    assert stats.verdict(mean, margin, sign, p_adj) == expected


def test_judge_applies_holm_over_the_family():
    # Alone, p = 0.03 would hold; among three claims its Holm value is 0.03·2 = 0.06.
    tests = [
        {"mean": -0.1, "margin": 0.0, "sign": -1, "p": 0.01},
        {"mean": -0.1, "margin": 0.0, "sign": -1, "p": 0.03},
        {"mean": +0.1, "margin": 0.0, "sign": -1, "p": 0.001},
    ]
    judged = stats.judge(tests)
    assert [j["p_holm"] for j in judged] == pytest.approx([0.02, 0.03, 0.003])
    assert [j["verdict"] for j in judged] == ["holds", "holds", "contradicted"]
    judged = stats.judge([*tests, {"mean": -0.1, "margin": 0.0, "sign": -1, "p": 0.5}])
    assert [j["p_holm"] for j in judged] == pytest.approx([0.03, 0.06, 0.004, 0.5])
    assert [j["verdict"] for j in judged] == [
        "holds",
        "inconclusive",
        "contradicted",
        "inconclusive",
    ]


def test_best_seed_and_uniform_flag():
    assert stats.best_seed_index([2.1, 1.9, float("nan"), 2.0]) == 1
    assert stats.worse_than_uniform(2.31, 10) is True
    assert stats.worse_than_uniform(2.30, 10) is False  # ln 10 = 2.302585
    assert stats.worse_than_uniform(None, 10) is False
