"""AutoTraj quality score, triage and acceptance; the Bradley-Terry loss (hand-computed)."""

from __future__ import annotations

import math

import pytest
import torch

from tirl.algo.preference import bradley_terry_loss, pairwise_accuracy
from tirl.curate.quality import (
    accept_repair,
    length_closeness,
    no_hedging,
    quality_score,
    quality_scores,
    triage,
    trigram_repetition,
)


def test_no_hedging_whole_words_in_think_blocks():
    assert no_hedging("<think>I think maybe 3</think><answer>3</answer>") == 0.0
    assert no_hedging("<think>Perhaps.</think>") == 0.0  # case-insensitive
    assert no_hedging("<think>that is unlikely</think>") == 1.0  # whole words only
    assert no_hedging("<think>sure</think><answer>maybe</answer>") == 1.0  # only thinking is checked
    assert no_hedging("It seems right") == 0.0  # no think blocks: the whole text


def test_length_closeness_gaussian_around_shortest():
    assert length_closeness(10, 10) == 1.0
    # (15-10)^2 / (2 * 5^2) = 25/50 = 0.5 -> exp(-0.5) = 0.606531, symmetric below
    assert length_closeness(15, 10) == pytest.approx(math.exp(-0.5))
    assert length_closeness(5, 10) == pytest.approx(0.606531, abs=1e-6)
    assert length_closeness(0, 0) == 1.0 and length_closeness(3, 0) == 0.0


def test_trigram_repetition():
    # "a b c a b c": trigrams abc, bca, cab, abc -> abc occurs twice: 2 repeated occurrences / 4
    assert trigram_repetition("a b c a b c") == 0.5
    assert trigram_repetition("a b c d e f") == 0.0
    assert trigram_repetition("a a a a a") == 0.0  # under 6 words: E = 1


def test_quality_score_hand_computed():
    text = "<think>maybe</think> a b c a b c"
    # 7 words, l* = 7 -> L = 1; trigrams 5, (a,b,c) twice -> repetition 2/5 = 0.4; hedged -> C = 0
    # 0.4*0 + 0.3*1 + 0.3*(1 - 0.4) = 0.48
    assert quality_score(text, shortest=7) == pytest.approx(0.48)
    clean = "<think>add</think> 2 plus 2 is 4"  # 6 words, no repeats, no hedge
    # shortest of (6 words, 12 words) is 6: the long one has L = exp(-36/(2*9)) = exp(-2)
    long = clean + " " + "x y z w v u"
    assert quality_scores([clean, long]) == pytest.approx([1.0, 0.4 + 0.3 * math.exp(-2) + 0.3])


def test_triage_and_acceptance():
    assert triage([0.95, 0.91]).keep == [0, 1]
    t = triage([0.5, 0.87, 0.86])
    assert (t.keep, t.repair) == ([1], [0, 2])  # not all >= 0.90, best 0.87 >= 0.86
    t = triage([0.8, 0.85])
    assert (t.keep, t.repair) == ([], [0, 1])
    assert triage([]).keep == []
    assert accept_repair(True, 0.86, original_correct=True)
    assert not accept_repair(True, 0.85, original_correct=True)
    assert accept_repair(True, 0.80, original_correct=False)
    assert not accept_repair(False, 1.0, original_correct=False)


def test_bradley_terry_loss_hand_computed():
    c, r = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    # -log σ(2) = log(1+e^-2) = 0.126928; -log σ(0) = log 2 = 0.693147; mean 0.410038
    assert float(bradley_terry_loss(c, r)) == pytest.approx(0.410038, abs=1e-6)
    assert pairwise_accuracy(c, r) == 0.5  # the tie counts as wrong
    assert float(bradley_terry_loss(torch.tensor([-50.0]), torch.tensor([50.0]))) == pytest.approx(100.0)  # stable
    with pytest.raises(ValueError, match="differ in shape"):
        bradley_terry_loss(c, torch.zeros(3))
