"""A/B comparison of strategies on a dataset: `compare(...)`, its statistics, report and pricing.

    from cropper import compare
    result = compare("data.jsonl", backend="reader", strategies="low,full,policy,tool", out="ab")
    print(result.table())
"""

from .pricing import DEFAULT_PRICES, Price, load_prices
from .results import ROW_FIELDS, ResultsFile, read_results
from .runner import Comparison, compare, parse_strategies
from .stats import mcnemar, paired_bootstrap, percentile, wilson_interval
from .summary import summarize

__all__ = ["ROW_FIELDS", "Comparison", "DEFAULT_PRICES", "Price", "ResultsFile", "compare", "load_prices", "mcnemar",
           "paired_bootstrap", "parse_strategies", "percentile", "read_results", "summarize", "wilson_interval"]
