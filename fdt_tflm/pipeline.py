"""The optimisation pipeline behind ``fdt_tflm.optimize``, as named steps.

load -> check -> reference run -> learn kernel scratch -> transform (tile -> reorder/plan ->
write) -> verify -> guard -> target prediction -> report.  Each step is a short function
of plain values, so each can be read (and tested) alone.  The guard makes the result never
worse than the input: if TFLM measures a larger head or total than the input's, it tries
fewer passes and keeps the best that is not worse, down to the input itself, and the
report says what happened.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Optional, Union

from .analysis import check_optimizable, predicted_head, summary
from .catalog.ops import FDT_PARTIAL_CODE, RewriteKind
from .effort import DEFAULT_LEVEL, Effort, effort as effort_budgets
from .tflm_model.head import ArenaBytes
from .tflm_model.instructions import predict_instructions, table_label
from .tflm_model.offline_plan import check_offline_plan
from .tflm_model.target import CORTEX_M4, Target
from .errors import FdtError, VerificationError
from .io import load_bytes, read_model, write_model
from .ir.graph import Model
from .catalog.macs import graph_macs
from .tflm_model.lifetimes import lifetimes, peak_live
from .report import Attempt, Fallback, Guard, ParetoEntry, PathEntry, Report, TargetPrediction

if TYPE_CHECKING:
    from .tflm_model.arena import TargetArena
    from .memory.passes import PlanReport
    from .memory.scheduler import Schedule
    from .verify import RunResult

PASSES = ("tile", "reorder", "plan")
# The default run-time budget: a rewrite may add at most this many predicted instructions on
# the target, in percent of the input's (FDT's promise: less memory at no run-time cost).
DEFAULT_SLOWDOWN_PCT = 1.0
DEFAULT_PASSES = ("tile", "reorder", "plan")
# The default run-time budget: a rewrite may add at most this many predicted instructions on
# the target, in percent of the input's (FDT's promise: less memory at no run-time cost).
DEFAULT_SLOWDOWN_PCT = 1.0
INPUT_VARIANT = "input"  # the guard's last resort: the input bytes exactly as given
Progress = Callable[[str], None]
ModelSource = Union[str, os.PathLike, bytes, bytearray, Model]


@dataclass(frozen=True)
class Options:
    """Everything ``optimize`` was asked to do (see its docstring)."""

    passes: tuple[str, ...] = DEFAULT_PASSES
    max_overhead: float = 0.0
    verify: bool = True
    allow_custom_ops: bool = False
    samples: int = 5
    litert: bool = True
    objective: str = "total"
    progress: Optional[Progress] = None
    effort: int = DEFAULT_LEVEL  # 1..5: work budgets (counts, not seconds), see fdt_tflm.effort
    # predicted extra instructions per invoke on ``target`` allowed, % of the input's (None:
    # DEFAULT_SLOWDOWN_PCT plus the MAC budget; math.inf: no limit)
    max_slowdown: Optional[float] = None
    # the TFLM build the model is for (--cpu / --part's core, --kernels): the search's tail,
    # scratch and instructions, the planner's scratch, the guard, the report and the header
    target: Target = CORTEX_M4

    def say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)

    @property
    def slowdown_budget(self) -> Optional[float]:
        """The instruction budget the search and the guard apply (None: no limit).  Unless
        given, FDT's zero-overhead promise (DEFAULT_SLOWDOWN_PCT) plus the MAC budget: a user
        who allows P % recomputed MACs allows about as many more instructions."""
        pct = DEFAULT_SLOWDOWN_PCT + self.max_overhead if self.max_slowdown is None else self.max_slowdown
        return None if math.isinf(pct) else pct

    @property
    def budgets(self) -> Effort:
        """The work budgets of ``effort`` (ValueError on a level outside 1..5)."""
        return effort_budgets(self.effort)


@dataclass(frozen=True)
class Source:
    """The input, read once."""

    data: bytes
    model: Model
    path: Optional[str]
    label: str


@dataclass(frozen=True)
class Arena(ArenaBytes):
    """A model's arena: TFLM's measurement, or the planner's prediction."""

    measured: bool = False


@dataclass(frozen=True)
class Candidate:
    """One rewritten model, written and read back, with what the passes said about it."""

    passes: tuple[str, ...]
    model: Model
    data: bytes
    paths: tuple[PathEntry, ...] = ()
    pareto: tuple[ParetoEntry, ...] = ()
    notes: tuple[str, ...] = ()  # what the tiling search said (budgets reached, nothing within budget)
    schedule: Optional["Schedule"] = None
    plan: Optional["PlanReport"] = None
    label: str = ""  # the variant's name, if not its passes

    @property
    def variant(self) -> str:
        return self.label or ",".join(self.passes) or "none"

    @property
    def needs_custom_kernel(self) -> bool:
        return any(oc.custom_code == FDT_PARTIAL_CODE for oc in self.model.operator_codes)


@dataclass(frozen=True)
class Checked:
    """A candidate after verification: its outputs' verdict and its arena."""

    candidate: Candidate
    verified: Optional[bool]  # None: verification off
    verification: Optional[dict]
    arena: Arena
    verified_by: Optional[str] = None  # one of report.VERIFIERS; None: verification off


@dataclass(frozen=True)
class Outcome:
    """What the pipeline hands to ``api.Result``."""

    source: Source
    kept: Checked
    report: Report


# -- steps ----------------------------------------------------------------------------------
def run(source: ModelSource, opts: Options) -> Outcome:
    """Run every step; raise VerificationError if the requested passes change the outputs."""
    t0 = time.perf_counter()
    src = load(source)
    check(src, opts)
    ref = reference_run(src, opts)
    model = learn_scratch(src.model, opts)
    first = verify(src, transform(model, opts), ref, opts)
    if first.verified is False:
        raise VerificationError(f"the optimised model's outputs differ from the original's in TFLM "
                                f"({_mismatch_note(first.verification)}); nothing written")
    before = OnTarget.of(src.model, opts.target)
    kept, guard, after = never_worse(src, model, ref, first, opts, before)
    opts.say("")
    report = build_report(src, kept, guard, ref, opts, scratch_notes(model), (before, after),
                          time.perf_counter() - t0)
    return Outcome(src, kept, report)


def load(source: ModelSource) -> Source:
    """Read the input once (a path, bytes or an IR Model); a bad file is an FdtError naming it."""
    if isinstance(source, Model):
        data = write_model(source)
        return Source(data, read_model(data), None, "input")
    path = None if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    data = load_bytes(source)
    try:
        model = read_model(data)
    except FdtError as e:
        raise FdtError(str(e).replace("input:", f"{path}:", 1) if path else str(e)) from None
    return Source(data, model, path, os.path.basename(path) if path else "input")


def check(src: Source, opts: Options) -> None:
    """Refuse models the passes cannot handle, before any work (re-serialising needs nothing)."""
    if opts.passes:
        check_optimizable(src.model)


def reference_run(src: Source, opts: Options) -> Optional["RunResult"]:
    """Run the input in TFLM before any pass: a model TFLM cannot run is bad input (exit 2),
    and its outputs and measured arena are what every candidate is compared with."""
    if not opts.verify:
        return None
    from .verify import make_inputs, run as run_model, runtime_available
    if not runtime_available("tflm"):
        raise FdtError("verification needs the TFLM host interpreter: pip install 'fdt-tflm[verify]' "
                       "(or pass --no-verify)")
    ref = run_model(src.data, make_inputs(src.model, opts.samples))
    if not ref.ok:
        raise FdtError(f"TFLM cannot run the input model: {ref.error}")
    return ref


def learn_scratch(model: Model, opts: Options) -> Model:
    """Ask TFLM what scratch the kernels no table of ours knows request (one-op runs, no child
    process when every op is known), so that the planner reserves it instead of assuming
    zero.  Needs TFLM: only with verification on."""
    if not opts.verify:
        return model
    from .verify.probe import learn_kernel_scratch
    return learn_kernel_scratch(model)


def scratch_notes(model: Model) -> list[str]:
    """What TFLM was probed for, one line per op type of unknown scratch (none if not probed)."""
    from .verify.probe import scratch_notes as notes
    return notes(model)


def transform(model: Model, opts: Options, label: str = "") -> Candidate:
    """tile -> reorder/plan -> write (``opts.passes``); the input model is never mutated."""
    passes = opts.passes
    paths: tuple[PathEntry, ...] = ()
    pareto: tuple[ParetoEntry, ...] = ()
    notes: tuple[str, ...] = ()
    if "tile" in passes:
        model, paths, pareto, notes = tile(model, opts)
    model, schedule, plan = memory_passes(model, passes, opts)
    opts.say("writing and verifying ...")
    check_offline_plan(model)  # TFLM trusts an offline plan blindly: never write one that overlaps
    data = write_model(model)
    return Candidate(passes, read_back(model, data), data, paths, pareto, notes, schedule, plan, label)


def read_back(model: Model, data: bytes) -> Model:
    """The written model as read from its bytes (what the firmware sees), with the scratch
    TFLM was probed for (never serialised) copied over, so predictions still count it."""
    back = read_model(data)
    for sg, sg_back in zip(model.subgraphs, back.subgraphs):
        for op, op_back in zip(sg.operators, sg_back.operators):
            if op.learned_scratch is not None:
                op_back.learned_scratch = op.learned_scratch
    return back


def tile(model: Model, opts: Options) -> tuple[Model, tuple[PathEntry, ...], tuple[ParetoEntry, ...], tuple[str, ...]]:
    """The tiling search.  Above 0 % MAC budget the zero-overhead search runs first and the
    better of the two is kept: the greedy search can be led somewhere worse by a recomputing
    first step, and a larger budget must never do worse.  The head objective must never give
    a larger head than the default (those two total-objective searches): when its own searches
    (at 0 % and at the budget) do, it continues from the default's answer instead, adding only
    what lowers the head.
    Each search gets the ``effort`` budgets and the ``max_slowdown`` budget (FDT costs
    instructions too, so the zero-MAC search needs it)."""
    from .tiling.search import score, search
    kw = dict(progress=opts.progress, allow_custom_ops=opts.allow_custom_ops, effort=opts.budgets,
              max_slowdown=opts.slowdown_budget, target=opts.target)
    budgets = dict.fromkeys((0.0, opts.max_overhead))  # one search when the budget is 0
    runs = [search(model, max_overhead=b, objective="total", **kw) for b in budgets]
    sr = min(runs, key=lambda r: score(r.final, "total"))  # min() keeps the first of equals
    if opts.objective == "head":
        default = min(runs, key=lambda r: score(r.final, "head"))
        sr = min((search(model, max_overhead=b, objective="head", **kw) for b in budgets),
                 key=lambda r: score(r.final, "head"))
        if sr.final.head > default.final.head:
            sr = min((search(model, max_overhead=opts.max_overhead, objective="head", start=default, **kw), default),
                     key=lambda r: score(r.final, "head"))
    pareto = tuple(ParetoEntry(p.total, p.head, p.mac_overhead_pct, p.n_paths, p.instruction_overhead_pct)
                   for p in sr.pareto)
    return sr.model, tuple(_path_entry(p) for p in sr.paths), pareto, tuple(sr.notes)


def memory_passes(model: Model, passes: tuple[str, ...],
                  opts: Options) -> tuple[Model, Optional["Schedule"], Optional["PlanReport"]]:
    """reorder and/or plan (both: the smaller head of the stored and the new order)."""
    from .memory import passes as mp
    if "reorder" in passes and "plan" in passes:
        return mp.reorder_and_plan(model, effort=opts.budgets, target=opts.target)
    if "reorder" in passes:
        model, schedule = mp.reorder(model, effort=opts.budgets, target=opts.target)
        return model, schedule, None
    if "plan" in passes:
        model, plan = mp.plan(model, effort=opts.budgets, target=opts.target)
        return model, None, plan
    return model, None, None


def verify(src: Source, cand: Candidate, ref: Optional["RunResult"], opts: Options) -> Checked:
    """Outputs against the input's, and the candidate's arena: TFLM's measurement where the
    host interpreter runs it, the planner's prediction otherwise (FDT_PARTIAL, or verify off)."""
    if ref is None:
        return Checked(cand, None, None, predicted_arena(cand.model))
    if cand.needs_custom_kernel:
        from .verify.custom import verify_custom
        ok, details = verify_custom(src.data, cand.model, opts.samples)
        return Checked(cand, bool(ok), details.to_dict(), predicted_arena(cand.model), "numpy-reference")
    from .verify import compare_models
    cmp = compare_models(src.model, src.data, cand.data, n_samples=opts.samples, litert=opts.litert, tflm_ref=ref)
    if not cmp.tflm.ran_a:
        raise FdtError(f"TFLM cannot run the input model: {cmp.tflm.note}")
    b = cmp.tflm.b
    measured = b is not None and b.head is not None and b.tail is not None
    arena = Arena(b.head, b.tail, True) if measured else predicted_arena(cand.model)
    return Checked(cand, bool(cmp.ok), cmp.to_dict(), arena, "tflm")


def predicted_arena(model: Model) -> Arena:
    """The planner's prediction of TFLM's head (as stored: offline plan + scratch) and tail."""
    from .tflm_model.tail import predict_tail
    return Arena(predicted_head(model).head, predict_tail(model), False)


def input_arena(src: Source, ref: Optional["RunResult"]) -> Arena:
    """The input's arena: measured by the reference run, else predicted."""
    if ref is not None and ref.head is not None and ref.tail is not None:
        return Arena(ref.head, ref.tail, True)
    return predicted_arena(src.model)


def fallback_chain(opts: Options) -> list[Options]:
    """The requested options, then more conservative ones: the tiling search on the total at
    0 % MAC overhead (if something else was asked), no tiling, the stored order (plan
    only), no offline plan (reorder only), nothing (the input re-serialised)."""
    chain = [opts]
    if "tile" in opts.passes and (opts.objective, opts.max_overhead) != ("total", 0.0):
        chain.append(replace(opts, objective="total", max_overhead=0.0))
    for keep in (set(opts.passes) - {"tile"}, {"plan"}, {"reorder"}, set()):
        passes = tuple(p for p in opts.passes if p in keep)
        if all(c.passes != passes for c in chain):
            chain.append(replace(opts, passes=passes))
    return chain


def variant_label(variant: Options, asked: Options) -> str:
    """The passes, plus the search settings where they differ from what was asked."""
    name = ",".join(variant.passes) or "none"
    if "tile" in variant.passes and (variant.objective, variant.max_overhead) != (asked.objective, asked.max_overhead):
        name += f" ({variant.objective} objective, {variant.max_overhead:g} % MACs)"
    return name


@dataclass(frozen=True)
class OnTarget:
    """A model as the target runs it, predicted once and used by the guard and the report:
    its arena (None: the target model refuses the model) and instructions per invoke."""

    target: Target
    arena: Optional["TargetArena"]
    instructions: int

    @property
    def header(self) -> Optional[int]:
        return None if self.arena is None else self.arena.header

    @classmethod
    def of(cls, model: Model, target: Target) -> "OnTarget":
        from .tflm_model import predict_arena
        try:
            arena: Optional["TargetArena"] = predict_arena(model, target)
        except FdtError:
            arena = None
        return cls(target, arena, predict_instructions(model, target=target))


@dataclass(frozen=True)
class Baseline:
    """What the guard compares every candidate with: the input on the host and on the target."""

    arena: Arena
    target: OnTarget
    slowdown: Optional[float]  # the instruction budget, % of the input's (None: no limit)


def never_worse(src: Source, model: Model, ref: Optional["RunResult"], first: Checked, opts: Options,
                on_target: OnTarget) -> tuple[Checked, Guard, OnTarget]:
    """Keep the requested model if, against the input (``on_target``: the input on the
    target), its head and total (TFLM on the host) and its predicted header on the target are
    each no larger, and its predicted instructions on the target stay within the slowdown
    budget; else the best such model along the fallback chain (on the search's objective);
    else the input itself.  Returns the kept model, the verdicts and the kept model on the target."""
    base = Baseline(input_arena(src, ref), on_target, opts.slowdown_budget)
    attempt, on = _attempt(first, base)
    attempts = [attempt]
    if attempt.accepted:
        return first, _guard(base, attempts, first), on
    accepted: list[tuple[Checked, OnTarget]] = []
    for variant in fallback_chain(opts)[1:]:
        label = variant_label(variant, opts)
        opts.say(f"never worse: trying {label} ...")
        checked = verify(src, transform(model, variant, label), ref, variant)
        attempt, on = _attempt(checked, base)
        attempts.append(attempt)
        if attempt.accepted:
            accepted.append((checked, on))
    if accepted:  # min() keeps the earliest of equals: the one with more passes, as asked
        best, on = min(accepted, key=lambda c: _rank(c[0].arena, opts.objective))
        return best, _guard(base, attempts, best), on
    kept = as_given(src, base.arena)
    attempts.append(Attempt(kept.candidate.variant, base.arena.head, base.arena.total, base.arena.measured,
                            kept.verified, True, "the input bytes as given", base.target.header, 0.0))
    return kept, _guard(base, attempts, kept), on_target


def _rank(a: Arena, objective: str) -> tuple[int, int]:
    return (a.head, a.total) if objective == "head" else (a.total, a.head)


def as_given(src: Source, base: Arena) -> Checked:
    """The input itself, unchanged: never worse than the input by construction, and its
    outputs are the reference's (verified, if verification is on, without another run)."""
    measured = base.measured
    return Checked(Candidate((), src.model, src.data, label=INPUT_VARIANT), True if measured else None, None,
                   base, "input" if measured else None)


def _attempt(c: Checked, base: Baseline) -> tuple[Attempt, OnTarget]:
    """The guard's verdict on one candidate, and the candidate on the target: outputs equal;
    head and total each <= the input's; on the target, the predicted header <= the input's and
    the predicted instructions within the slowdown budget."""
    target = base.target.target
    arena, on = c.arena, OnTarget.of(c.candidate.model, target)
    slow = overhead_pct(base.target.instructions, on.instructions)
    basis = "TFLM measured" if arena.measured else "predicted"
    where = f"on the {target.label}"
    header, base_header, budget = on.header or 0, base.target.header or 0, base.slowdown or 0.0
    problems = [
        (c.verified is False, "outputs differ from the input's"),
        (arena.head > base.arena.head, f"{basis} head {arena.head:,} B > the input's {base.arena.head:,} B"),
        (arena.total > base.arena.total, f"{basis} total {arena.total:,} B > the input's {base.arena.total:,} B"),
        (None not in (on.header, base.target.header) and header > base_header,
         f"predicted header {header:,} B {where} > the input's {base_header:,} B"),
        (base.slowdown is not None and slow > budget + 1e-9,
         f"predicted instructions {slow:+.2f} % {where} > the {budget:g} % budget"),
    ]
    failed = [why for bad, why in problems if bad]
    note = failed[0] if failed else f"{basis} head and total, predicted header and instructions {where} within the input's"
    return Attempt(c.candidate.variant, arena.head, arena.total, arena.measured, c.verified, not failed, note,
                   on.header, slow), on


def _guard(base: Baseline, attempts: list[Attempt], kept: Checked) -> Guard:
    variant, first = kept.candidate.variant, attempts[0]
    why = f"{first.note}; kept {variant}: head {kept.arena.head:,} B, total {kept.arena.total:,} B"
    fallback = None if first.accepted else Fallback(first.variant, variant, why)
    return Guard(base.arena.measured, base.arena.head, base.arena.total, variant, attempts, fallback,
                 base.target.header, base.slowdown)


def predict_target(original: OnTarget, written: OnTarget) -> Optional[TargetPrediction]:
    """The arena both models need on the firmware target, predicted from TFLM's sources (the
    host measurements' pointer-sized structs are larger than a 32-bit MCU's).  None if the
    target model refuses either model."""
    before, after, t = original.arena, written.arena, written.target
    if before is None or after is None:
        return None
    return TargetPrediction(t.cpu, t.kernels, t.abi, before.head, before.tail, before.header, after.head, after.tail,
                            after.scratch, after.min_working, after.header, list(after.unmodelled))


def build_report(src: Source, kept: Checked, guard: Guard, ref: Optional["RunResult"], opts: Options,
                 learned: list[str], on_target: tuple[OnTarget, OnTarget], seconds: float) -> Report:
    """The typed report, built once from the kept model and the measurements."""
    cand = kept.candidate
    orig_macs, macs = graph_macs(src.model.main), graph_macs(cand.model.main)
    return Report(
        model=src.label, passes=list(cand.passes), requested_passes=list(opts.passes), objective=opts.objective,
        max_overhead_pct=opts.max_overhead, max_slowdown_pct=opts.slowdown_budget, **_input_facts(src, ref),
        original_macs=orig_macs,
        **_arena_facts(kept), **_plan_facts(cand),
        macs=macs, mac_overhead_pct=round((macs - orig_macs) / orig_macs * 100, 3) if orig_macs else 0.0,
        **_instruction_facts(*on_target),
        operators=len(cand.model.main.operators), paths=list(cand.paths), pareto=list(cand.pareto),
        search_notes=list(cand.notes),
        needs_custom_kernel=cand.needs_custom_kernel, verified=kept.verified, verified_by=kept.verified_by,
        verification=kept.verification, learned_scratch=learned, guard=guard, target=predict_target(*on_target),
        seconds=round(seconds, 3))


def _instruction_facts(original: OnTarget, written: OnTarget) -> dict:
    """Predicted instructions of one TFLM invoke of each model on the target: run time that
    MACs understate."""
    before, after = original.instructions, written.instructions
    return {"original_instructions": before, "instructions": after,
            "instruction_overhead_pct": overhead_pct(before, after), "instructions_for": table_label(written.target)}


def overhead_pct(before: int, after: int) -> float:
    """``after`` over ``before`` in percent, rounded as the report gives it."""
    return round((after - before) / before * 100, 3) if before else 0.0


def _input_facts(src: Source, ref: Optional["RunResult"]) -> dict:
    """The input's head and total: TFLM's, or (verification off) TFLM's greedy plan predicted."""
    info = summary(src.model)
    measured = input_arena(src, ref) if ref is not None else None
    return {"original_arena_bytes": measured.head if measured else info["tflm_default_arena_bytes"],
            "original_total_arena_bytes": measured.total if measured else None,
            "original_peak_live_bytes": info["peak_live_bytes"], "original_operators": info["operators"]}


def _arena_facts(kept: Checked) -> dict:
    """The written model's arena; without verification only the predicted head (no totals)."""
    predicted = predicted_head(kept.candidate.model).head
    checked = kept.verified is not None
    return {"arena_bytes": kept.arena.head if checked else predicted,
            "total_arena_bytes": kept.arena.total if checked else None,
            "tail_bytes": kept.arena.tail if checked else None,
            "predicted_arena_bytes": predicted, "measured": checked and kept.arena.measured}


def _plan_facts(cand: Candidate) -> dict:
    """What the plan and reorder passes said (neutral values where they did not run)."""
    plan, sched = cand.plan, cand.schedule
    return {"planned_bytes": plan.planned_bytes if plan else predicted_head(cand.model).head,
            "peak_live_bytes": plan.peak_live_bytes if plan else peak_live(lifetimes(cand.model.main)),
            "optimal": bool(plan.optimal) if plan else False,
            "optimality_gap": float(plan.gap) if plan else None,
            "solve_seconds": round(float(plan.solve_seconds), 3) if plan else 0.0,
            "schedule_optimal": bool(sched.optimal) if sched is not None else None}


def _path_entry(p) -> PathEntry:
    ops = [f"{i}:{t}" for i, t in zip(p.ops, p.op_types)] if len(p.op_types) == len(p.ops) else [str(i) for i in p.ops]
    tiles = None if p.tiles is None else [list(a) if isinstance(a, tuple) else a for a in p.tiles]
    return PathEntry(RewriteKind(p.kind).value, ops, list(p.op_types), int(p.parts), p.end, tiles, int(p.total_before),
                     int(p.total_after), float(p.mac_overhead_pct), float(p.instruction_overhead_pct),
                     int(p.channel_parts))


def _mismatch_note(verification: Optional[dict]) -> str:
    tflm = (verification or {}).get("tflm") or {}
    return tflm.get("note") or "; ".join((verification or {}).get("errors", [])) or "mismatch"


def stderr_progress() -> Optional[Progress]:
    """Progress on one rewritten stderr line, only on a terminal."""
    if not sys.stderr.isatty():
        return None

    def say(msg: str) -> None:
        print(f"\r\033[K{msg}", end="", file=sys.stderr, flush=True)
    return say
