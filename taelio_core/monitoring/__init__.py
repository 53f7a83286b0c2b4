"""Watching providers and budgets: health history and the alerts that reach people.

Empty on purpose: ``taelio --help`` must not import what it does not use.
"""
