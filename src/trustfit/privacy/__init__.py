"""Privacy: DP-SGD training (dp.py, accounting.py, params.py), the privacy-risk audit
(membership.py, canaries.py, losses.py, audit.py, report.py) and the personal-data scan (scan.py)."""
