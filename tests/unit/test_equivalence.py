import pytest
import torch

from pytest_cxrperf.gate import equivalence as eq


def logits_with_top(vocab, ranking, gap=3.0):
    """Unit-normal logits where ranking[0] is best, then ranking[1] ``gap`` lower, ..."""
    values = torch.randn(vocab, generator=torch.Generator().manual_seed(vocab))
    top = float(values.max())
    for rank, token in enumerate(ranking):
        values[token] = top + 10.0 - gap * rank
    return values


def test_identical_tokens_pass():
    steps = torch.stack([logits_with_top(64, [1]), logits_with_top(64, [2])])
    check = eq.compare_tokens([1, 2], [1, 2], steps, tie_margin=0.0)
    assert check.ok and check.matched_prefix == 2


def test_divergence_at_clear_winner_fails():
    steps = torch.stack([logits_with_top(64, [1, 5]), logits_with_top(64, [2, 3])])
    check = eq.compare_tokens([1, 2], [1, 3], steps, tie_margin=0.5)
    assert not check.ok
    assert check.divergence_step == 1
    assert "not a near tie" in check.message


def test_divergence_at_near_tie_is_accepted_within_tolerance():
    near = torch.zeros(64)
    near[2], near[3] = 1.0, 0.999
    steps = torch.stack([logits_with_top(64, [1]), near])
    assert eq.compare_tokens([1, 2, 4], [1, 3, 7], steps, tie_margin=0.5).ok
    assert not eq.compare_tokens([1, 2, 4], [1, 3, 7], steps, tie_margin=0.0).ok


def test_early_stop_is_a_failure():
    steps = torch.stack([logits_with_top(64, [1]), logits_with_top(64, [2])])
    check = eq.compare_tokens([1, 2], [1], steps, tie_margin=10.0)
    assert not check.ok and "stopped early" in check.message


def test_prefill_logits():
    ref = torch.randn(100, generator=torch.Generator().manual_seed(0))
    assert eq.compare_prefill_logits(ref, ref + 1e-6, 1e-4).ok
    noisy = ref + 0.5 * torch.randn(100, generator=torch.Generator().manual_seed(1))
    result = eq.compare_prefill_logits(ref, noisy, 1e-4)
    assert not result.ok and result.rel_err > 0.1
    assert not eq.compare_prefill_logits(ref, ref[:50], 1.0).ok
    nan = ref.clone()
    nan[3] = float("nan")
    assert not eq.compare_prefill_logits(ref, nan, 10.0).ok


def test_teacher_forced_agreement():
    ref = torch.eye(4) * 5
    cand = ref.clone()
    cand[3] = torch.tensor([5.0, 0, 0, 0])
    check = eq.compare_teacher_forced(ref, cand, 0.9)
    assert not check.ok and check.agreement == 0.75 and check.disagreeing_positions == [3]
    assert eq.compare_teacher_forced(ref, cand, 0.75).ok


def test_teacher_forced_counts_only_near_ties_as_agreement():
    ref = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    ref[:, 0] = ref.max() + 5.0  # the reference clearly prefers token 0 ...
    ref[2, 1] = ref[2, 0] - 1e-3  # ... except at position 2, a near tie with token 1
    cand = torch.zeros(3, 64)
    cand[:, 0] = 1.0
    cand[2, 1] = 2.0  # the candidate flips the near tie
    strict = eq.compare_teacher_forced(ref, cand, 1.0, tie_margin=0.0)
    assert not strict.ok and strict.disagreeing_positions == [2]
    tolerant = eq.compare_teacher_forced(ref, cand, 1.0, tie_margin=0.01)
    assert tolerant.ok and tolerant.raw_agreement == pytest.approx(2 / 3)
    cand[1, 5] = 9.0  # a flip where the reference was decisive still counts
    assert eq.compare_teacher_forced(ref, cand, 1.0, tie_margin=0.01).disagreeing_positions == [1]


def test_tolerances_precedence():
    base = eq.tolerances_for("bf16", "eager-bf16")
    assert base.prefill_rel_err == eq.DEFAULT_TOLERANCES["bf16"]["prefill_rel_err"]
    over = eq.tolerances_for(
        "bf16", "eager-bf16", {"bf16.prefill_rel_err": 0.2, "eager-bf16.prefill_rel_err": 0.3}
    )
    assert over.prefill_rel_err == 0.3
    with pytest.raises(ValueError):
        eq.tolerances_for("fp8", "x")
    assert eq.unknown_tolerance_keys({"bf16.prefil_rel_err": 1.0, "bf16.tie_margin": 1}) == [
        "bf16.prefil_rel_err"
    ]
