"""Calibration over the full PEtab bounds reaches the published fit of real benchmark problems (one
seed each, the default options but those named below): the log-likelihood at the problem's nominal
parameters (AMICI's reference), within 0.5. `benchmarks/calibrate_suite.py` runs six problems with three seeds each.
The time caps of the search and the starts (`global_time`, `max_cpu_time`) are lifted so that evaluation
and iteration budgets end them: the same starts on any machine (the CLI's caps bind on a slow or loaded
one). Two changes keep the test within CI's time: no Latin-hypercube starts (`random_starts` 0: the
search's basins are the starts that reach, Fujita's ess starts 2 and 4 at 66.58, where two of its
Latin-hypercube starts ran 120 s each into `max_cpu_time` and, uncapped, far longer), and `hop_time`
120 s (default 500 s): no hop is drawn later, so Boehm and Bruno (done in about a minute) hop as by
default, and Fujita ends after its starts (and the refinement of its two best ends, at most `refine_time`, 40 s).
`benchmarks/calibrate_suite.py` runs the defaults, three seeds.
"""

from __future__ import annotations

import pytest

from qspflow.calibrate import calibrate_problem

pytestmark = pytest.mark.slow

REFERENCES = {
    "Boehm_JProteomeRes2014": -138.22199693517703,
    "Bruno_JExpBot2016": 46.688176988431806,
    "Fujita_SciSignal2010": 53.08377736998929,
}


@pytest.mark.parametrize("problem", list(REFERENCES))
def test_calibration_reaches_the_published_fit(cases, problem):
    result = calibrate_problem(cases / "petab-collection" / problem / f"{problem}.yaml", seed=0, profile=False,
                               threads=2, global_time=3600.0, max_cpu_time=3600.0, hop_time=120.0,
                               random_starts=0)
    assert result.best_llh >= REFERENCES[problem] - 0.5
    assert result.reached
    best = result.starts.loc[result.starts["llh"].idxmax()]
    assert best["method"] in ("shooting", "shooting+transcription")
