"""Selection among calibrated hypotheses by AICc and BIC."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from qspflow.errors import ConfigError


def rank_models(results: Mapping[str, tuple[float, int, int]]) -> pd.DataFrame:
    """Rank calibrated hypotheses {name: (log-likelihood, parameters k, data points n)}.

    AICc = 2k − 2·llh + 2k(k+1)/(n−k−1) (infinite when n ≤ k+1), BIC = k·ln n − 2·llh; deltas from the
    best, Akaike weights exp(−ΔAICc/2)/Σ, ranks (1 = best). Rows sorted by AICc, then name: the
    first row is the best model.
    """
    if not results:
        raise ConfigError(None, key="results", expected="at least one calibrated model")
    rows = []
    for name, (llh, k, n) in results.items():
        aic = 2 * k - 2 * llh
        aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf
        rows.append((str(name), float(llh), int(k), int(n), aicc, k * math.log(n) - 2 * llh))
    frame = pd.DataFrame(rows, columns=["model", "llh", "n_params", "n_data", "aicc", "bic"])
    frame = frame.sort_values(["aicc", "model"], kind="stable").reset_index(drop=True)
    for criterion in ("aicc", "bic"):
        best = frame[criterion].min()
        frame[f"delta_{criterion}"] = frame[criterion] - best if math.isfinite(best) else math.nan
        frame[f"rank_{criterion}"] = frame[criterion].rank(method="min").astype(int)
    relative = np.exp(-0.5 * frame["delta_aicc"].to_numpy(dtype=float))
    relative[~np.isfinite(relative)] = 0.0
    frame["weight"] = relative / relative.sum() if relative.sum() > 0 else math.nan
    return frame[["model", "llh", "n_params", "n_data", "aicc", "delta_aicc", "weight", "rank_aicc", "bic",
                  "delta_bic", "rank_bic"]]
