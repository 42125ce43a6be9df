"""The core: contracts, profiles, drift statistics, control charts and metrics.

Pure Python over numpy, scipy and pandas — no web, SQL or CLI imports — so the maths is
easy to test with plain arrays and every outer layer can rely on it.
"""
