"""Statistics for reporting: estimates with confidence intervals, and inter-rater agreement.

Pure functions over plain lists; every aggregate comes back as a `MetricValue` with its n.

>>> from personae.stats import proportion_ci
>>> str(proportion_ci(8, 10))
'0.80 [0.49, 0.94] n=10'
"""

from personae.stats.agreement import (
    Level,
    alpha_ci,
    exact_agreement,
    krippendorff_alpha,
    mean_abs_difference,
)
from personae.stats.correlation import Correlation, pearson_ci, spearman_ci
from personae.stats.intervals import (
    BootstrapMethod,
    MetricValue,
    mean_ci,
    mean_of,
    paired_delta_ci,
    paired_t_ci,
    proportion_ci,
)
from personae.stats.trend import Slope, slope_ci

__all__ = [
    "BootstrapMethod",
    "Correlation",
    "Level",
    "MetricValue",
    "Slope",
    "alpha_ci",
    "exact_agreement",
    "krippendorff_alpha",
    "mean_abs_difference",
    "mean_ci",
    "mean_of",
    "paired_delta_ci",
    "paired_t_ci",
    "pearson_ci",
    "proportion_ci",
    "slope_ci",
    "spearman_ci",
]
