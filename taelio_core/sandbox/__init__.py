"""The sandbox: the real router, in virtual time, on simulated or replayed traffic.

``loop`` (a virtual-time event loop), ``providers`` and ``models`` (simulated
providers and their behaviour, scenarios), ``traffic`` (synthetic or replayed
from the log), ``engine`` (one policy over one traffic sample), ``simulation``
(A vs B over seeds), ``results`` (summaries and deltas), ``fitting`` (models
from the log), ``policy_edit`` (tables and TOML), ``store`` (saved runs).
"""
