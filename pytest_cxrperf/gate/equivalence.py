"""Does a backend say the same thing as the eager fp32 reference? Pure functions on tensors.

Three checks, each with a tolerance chosen by the backend's precision (overridable in ini):

* **token ids** -- greedy outputs must be identical, except that a lower-precision backend may
  take the other branch at a *near tie*: the first differing step is accepted only if, in the
  reference's own logits at that step, the backend's token scored within ``tie_margin`` (in units
  of that step's logit standard deviation) of the reference's token. After an accepted divergence
  the two texts legitimately differ, so comparison stops there.
* **prefill logits** -- the next-token logits after the prompt: relative L2 error
  ``||b - r|| / ||r||`` at most ``prefill_rel_err``, and the same top-1 token.
* **teacher-forced top-1** -- both score the reference's output in one pass; the fraction of
  positions whose argmax agrees must be at least ``teacher_top1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..backends.precision import DEFAULT_TOLERANCES, METRICS
from . import findings

if TYPE_CHECKING:
    from ..model.study_record import Study
    from ..results import RunResults
    from ..session import CxrSession, PreparedBackend


@dataclass(frozen=True)
class Tolerances:
    tie_margin: float
    prefill_rel_err: float
    teacher_top1: float


def tolerances_for(
    precision: str, backend: str, overrides: Mapping[str, float] | None = None
) -> Tolerances:
    """Defaults by precision, then ini overrides by precision, then by backend name."""
    if precision not in DEFAULT_TOLERANCES:
        raise ValueError(f"no tolerances for precision {precision!r}")
    values = dict(DEFAULT_TOLERANCES[precision])
    for key in (precision, backend):
        for metric in METRICS:
            override = (overrides or {}).get(f"{key}.{metric}")
            if override is not None:
                values[metric] = override
    return Tolerances(**values)


def unknown_tolerance_keys(overrides: Mapping[str, float]) -> list[str]:
    """Override keys whose metric is not one of :data:`METRICS` (typos must not pass silently)."""
    return sorted(k for k in overrides if k.rpartition(".")[2] not in METRICS)


@dataclass(frozen=True)
class TokenCheck:
    ok: bool
    matched_prefix: int
    reference_length: int
    candidate_length: int
    divergence_step: int | None = None
    margin: float | None = None  # reference logit gap at the divergence, in std units
    message: str = ""


def compare_tokens(
    reference_ids: list[int],
    candidate_ids: list[int],
    reference_step_logits: torch.Tensor,
    tie_margin: float,
) -> TokenCheck:
    """Identical, or diverging first at a step where the reference itself was nearly tied."""
    prefix = 0
    for ref, cand in zip(reference_ids, candidate_ids, strict=False):
        if ref != cand:
            break
        prefix += 1
    n_ref, n_cand = len(reference_ids), len(candidate_ids)
    if prefix == n_ref == n_cand:
        return TokenCheck(True, prefix, n_ref, n_cand, message="identical token ids")
    if prefix == min(n_ref, n_cand):
        return TokenCheck(
            False,
            prefix,
            n_ref,
            n_cand,
            prefix,
            message=f"lengths differ after {prefix} identical tokens "
            f"(reference {n_ref}, backend {n_cand}): one stopped early",
        )
    step_logits = reference_step_logits[prefix].float()
    ref_token, cand_token = reference_ids[prefix], candidate_ids[prefix]
    scale = float(step_logits.std()) or 1.0
    margin = float(step_logits[ref_token] - step_logits[cand_token]) / scale
    ok = margin <= tie_margin
    verdict = "a near tie, accepted" if ok else f"not a near tie (tolerance {tie_margin:g})"
    return TokenCheck(
        ok,
        prefix,
        n_ref,
        n_cand,
        prefix,
        margin,
        message=f"first difference at step {prefix}: reference token {ref_token}, backend token "
        f"{cand_token}; the reference preferred its token by {margin:.3g} logit std: {verdict}",
    )


@dataclass(frozen=True)
class LogitCheck:
    ok: bool
    rel_err: float
    max_abs_err: float
    same_top1: bool
    message: str = ""


def compare_prefill_logits(
    reference: torch.Tensor, candidate: torch.Tensor, max_rel_err: float
) -> LogitCheck:
    if reference.shape != candidate.shape:
        return LogitCheck(
            False,
            float("inf"),
            float("inf"),
            False,
            f"logit shapes differ: reference {tuple(reference.shape)}, "
            f"backend {tuple(candidate.shape)}",
        )
    ref, cand = reference.double(), candidate.double()
    rel = float(
        torch.linalg.vector_norm(cand - ref) / max(float(torch.linalg.vector_norm(ref)), 1e-30)
    )
    max_abs = float((cand - ref).abs().max())
    same = int(ref.argmax()) == int(cand.argmax())
    ok = rel <= max_rel_err and same and bool(torch.isfinite(cand).all())
    message = (
        f"prefill logits: relative L2 error {rel:.3g} (tolerance {max_rel_err:g}), "
        f"max abs error {max_abs:.3g}, top-1 {'same' if same else 'DIFFERENT'}"
    )
    return LogitCheck(ok, rel, max_abs, same, message)


@dataclass(frozen=True)
class AgreementCheck:
    ok: bool
    agreement: float  # positions with the same top-1, or a near tie in the reference
    raw_agreement: float  # positions with the same top-1
    positions: int
    disagreeing_positions: list[int] = field(default_factory=list)
    message: str = ""


def near_tie_margins(reference_logits: torch.Tensor, candidate_top: torch.Tensor) -> torch.Tensor:
    """Per position: how much the reference preferred its own top-1 over the candidate's top-1,
    in units of that position's logit standard deviation (0 where they agree)."""
    ref = reference_logits.float()
    ref_best = ref.max(dim=-1).values
    ref_at_candidate = ref.gather(-1, candidate_top.unsqueeze(-1)).squeeze(-1)
    scale = ref.std(dim=-1).clamp_min(1e-12)
    return (ref_best - ref_at_candidate) / scale


def compare_teacher_forced(
    reference_logits: torch.Tensor,
    candidate_logits: torch.Tensor,
    min_agreement: float,
    tie_margin: float = 0.0,
) -> AgreementCheck:
    """Both score the reference's output in one pass; a position agrees when the top-1 tokens are
    equal, or when the reference itself had the candidate's token within ``tie_margin`` (the same
    near-tie rule as :func:`compare_tokens`, so a short report is not failed by one flip)."""
    if reference_logits.shape != candidate_logits.shape:
        return AgreementCheck(
            False,
            0.0,
            0.0,
            int(reference_logits.shape[0]),
            message=f"teacher-forced logit shapes differ: {tuple(reference_logits.shape)} vs "
            f"{tuple(candidate_logits.shape)}",
        )
    cand_top = candidate_logits.argmax(-1)
    same = reference_logits.argmax(-1) == cand_top
    tied = near_tie_margins(reference_logits, cand_top) <= tie_margin
    agree = same | tied
    positions = int(agree.numel())
    fraction = float(agree.float().mean()) if positions else 1.0
    raw = float(same.float().mean()) if positions else 1.0
    bad = [int(i) for i in torch.nonzero(~agree).flatten()]
    ok = fraction >= min_agreement
    return AgreementCheck(
        ok,
        fraction,
        raw,
        positions,
        bad,
        f"teacher-forced top-1 agreement {fraction:.1%} over {positions} positions counting near "
        f"ties within {tie_margin:g} std ({raw:.1%} identical; needs {min_agreement:.1%}); "
        f"disagreeing at {bad[:10]}",
    )


# ---- a backend on a study, every check ----------------------------------------------------------
GROUND_TRUTH_MODELS = ("toy",)  # trained to write the phantom's findings; random models are not


def equivalence_of(
    session: CxrSession, results: RunResults, prepared: PreparedBackend, study: Study
) -> dict[str, dict[str, Any]]:
    """Run the backend on the study and compare it with eager fp32; results are cached."""
    result = results.backend(prepared.label)
    if study.name in result.equivalence:
        return result.equivalence[study.name]
    tolerances = tolerances_for(prepared.precision, prepared.name, session.settings.tolerances)
    reference = session.reference_output(study)
    inputs = session.inputs(study)
    candidate = prepared.runner.generate(
        inputs, session.settings.max_new_tokens, return_logits=True
    )
    teacher = prepared.runner.score(inputs, reference.generation.token_ids)
    assert reference.generation.step_logits is not None
    tokens = compare_tokens(
        reference.generation.token_ids,
        candidate.token_ids,
        reference.generation.step_logits,
        tolerances.tie_margin,
    )
    prefill = compare_prefill_logits(
        reference.teacher_logits[0], teacher[0], tolerances.prefill_rel_err
    )
    agreement = compare_teacher_forced(
        reference.teacher_logits, teacher, tolerances.teacher_top1, tolerances.tie_margin
    )
    checks = {
        "token_ids": {
            "ok": tokens.ok,
            "message": tokens.message,
            "matched_prefix": tokens.matched_prefix,
            "reference_length": tokens.reference_length,
            "backend_length": tokens.candidate_length,
            "margin_std": tokens.margin,
        },
        "prefill_logits": {
            "ok": prefill.ok,
            "message": prefill.message,
            "rel_err": prefill.rel_err,
            "max_abs_err": prefill.max_abs_err,
            "same_top1": prefill.same_top1,
        },
        "teacher_forced_top1": {
            "ok": agreement.ok,
            "message": agreement.message,
            "agreement": agreement.agreement,
            "identical_top1": agreement.raw_agreement,
            "positions": agreement.positions,
        },
        "clinical_findings": clinical_check(
            reference.generation.text, candidate.text, "the eager fp32 reference"
        ),
    }
    if study.reference_findings is not None and session.reference.name in GROUND_TRUTH_MODELS:
        truth = clinical_check(study.reference_findings, candidate.text, "the study's ground truth")
        eos = session.reference.config.eos_token_id
        if not truth["ok"] and candidate.token_ids[-1:] != [eos]:
            truth["message"] += (
                f" (the report was cut at {len(candidate.token_ids)} tokens before its end: "
                "raise --cxr-max-new-tokens)"
            )
        checks["ground_truth_findings"] = truth
    result.equivalence[study.name] = checks
    result.outputs[study.name] = candidate.text
    result.precision = prepared.precision
    return checks


def clinical_check(reference_text: str, candidate_text: str, against: str) -> dict[str, Any]:
    """Do two reports assert the same findings (label, present/absent/uncertain, side)?

    Token and n-gram metrics rate "small left effusion" and "no left effusion" as nearly equal;
    this compares what a radiologist would act on."""
    expected, found = findings.extract(reference_text), findings.extract(candidate_text)
    differences = findings.compare(expected, found)
    summary = "; ".join(f.describe() for f in found) or "no findings asserted"
    message = (
        f"asserts the same findings as {against}: {summary}"
        if not differences
        else f"findings differ from {against}: " + "; ".join(differences)
    )
    return {
        "ok": not differences,
        "message": message,
        "expected": findings.to_json(expected),
        "found": findings.to_json(found),
        "differences": differences,
    }
