"""The options of a calibration (the keys of the workflow's `calibrate:` section), checked once.

Their defaults are the schema's (`config/schema.yaml`, tested to agree); `seed` and `threads` are not
config keys: the workflow derives the seed per rule and gives each job its threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from qspflow.options import check_keys, choice, flag, integer, names, number

SECTION = "calibrate"
GLOBAL_METHODS = ("ess", "de", "none")
SOLVERS = ("ipopt", "ripopt")
LOCAL_METHODS = ("shooting", "transcription")


@dataclass(frozen=True)
class CalibrationOptions:
    """Every option of a calibration, in the order `summary.tsv` lists them.

    starts: local starts — the best global candidate of each basin the global search found
    (`search.best_of_basins`), topped up with Latin-hypercube points, or Latin-hypercube points
    alone with global_method "none". random_starts: further local starts from Latin-hypercube points
    over the bounds (the global search's best points can all lie in one basin). hops: at most this
    many basin hops after the starts (local starts from the best point so far, a random part of its
    coordinates moved; `CalibrationSession.hop`); hop_stall: they stop after this many hops in a row
    without progress; hop_time: basin hopping ends this many seconds after the calibration began (no
    hop is drawn later; hops still running then stop where they are, unverified). refine_time: with
    shooting, the two best ends are refined after the hops (fides on to a strict function tolerance;
    `CalibrationSession.refine`) until hop_time + refine_time seconds after the calibration began (0:
    none).
    seed: seeds the global search, the Latin hypercubes and the hops.
    local_method: "shooting" (fides trust-region Newton on the simulated likelihood with forward
    sensitivities; profiles the same way) or "transcription" (Pyomo direct transcription from the
    start). polish: after shooting, re-solve the best optimum by the Pyomo transcription and keep that
    where it converges and is verified. solver: "ipopt" (cyipopt) or "ripopt". global_method: "ess"
    (scatter search), "de" (differential evolution) or "none". local_phase: with "ess" and "shooting", local
    solves inside the scatter search (MEIGO's local phase), whose optima are the first local starts.
    global_evaluations, global_time: budget of the global search (batch-objective evaluations; seconds;
    a local solve of the local phase counts as one evaluation and may end up to max_cpu_time past
    global_time). optimal_scalings: the global stage searches over the parameters other than the
    observation scaling factors (`CalibrationSpec.scalings`), each factor at its closed-form optimum
    given them (`objective.ScalingsAtOptimum`), and every local start begins with its factors there.
    n_elements: collocation elements per measurement interval. local_box: half-width of
    the moving box of a local solve, as a fraction of each bound width. max_iter: solver iterations per
    solve. max_cpu_time: solver seconds per local start, and the most the re-simulation that verifies it
    may take (a shooting optimum's: as long as its solve took, at least 10 s). verify_tolerance: largest
    accepted |collocation − simulated| log-likelihood.
    max_refinements: element doublings allowed when it is larger. min_distance: least normalized
    distance between two local starts. profile: compute profiles and CIs. profile_parameters: the
    parameters to profile (empty: every estimated parameter). profile_step: first
    profile step (fraction of the bound width). profile_max_steps: profile steps per side.
    threads: simulator threads and worker processes (results do not depend on it).
    global_time, hop_time, refine_time and max_cpu_time are safety caps: when one of them binds, the result
    depends on the speed of the machine.
    """

    starts: int = 5
    random_starts: int = 5
    hops: int = 100
    hop_stall: int = 20
    hop_time: float = 500.0
    refine_time: float = 40.0
    seed: int = 0
    local_method: str = "shooting"
    polish: bool = True
    solver: str = "ipopt"
    global_method: str = "ess"
    local_phase: bool = False
    global_evaluations: int = 20_000
    optimal_scalings: bool = False
    global_time: float = 300.0
    n_elements: int = 4
    local_box: float = 0.1
    max_iter: int = 3000
    max_cpu_time: float = 120.0
    verify_tolerance: float = 1e-3
    max_refinements: int = 2
    min_distance: float = 0.05
    profile: bool = True
    profile_parameters: tuple[str, ...] = ()
    profile_step: float = 0.01
    profile_max_steps: int = 100
    threads: int = 1

    def __post_init__(self) -> None:
        for key in ("starts", "global_evaluations", "n_elements", "max_iter", "profile_max_steps", "threads",
                    "hop_stall"):
            integer(_key(key), getattr(self, key), minimum=1)
        for key in ("seed", "max_refinements", "random_starts", "hops"):
            integer(_key(key), getattr(self, key), minimum=0)
        number(_key("refine_time"), self.refine_time, minimum=0)
        for key in ("global_time", "hop_time", "local_box", "max_cpu_time", "verify_tolerance", "min_distance",
                    "profile_step"):
            number(_key(key), getattr(self, key), positive=True)
        choice(_key("solver"), self.solver, SOLVERS)
        choice(_key("local_method"), self.local_method, LOCAL_METHODS)
        flag(_key("polish"), self.polish)
        flag(_key("local_phase"), self.local_phase)
        flag(_key("optimal_scalings"), self.optimal_scalings)
        choice(_key("global_method"), self.global_method, GLOBAL_METHODS)
        flag(_key("profile"), self.profile)
        object.__setattr__(self, "profile_parameters", names(_key("profile_parameters"), self.profile_parameters))


def _key(name: str) -> str:
    return f"{SECTION}.{name}"


def calibration_options(options: Mapping[str, object]) -> CalibrationOptions:
    """Keyword options as `CalibrationOptions`; an unknown key or bad value raises `ConfigError`
    naming it as `calibrate.<key>`."""
    check_keys(SECTION, options, [f.name for f in fields(CalibrationOptions)])
    return CalibrationOptions(**options)
