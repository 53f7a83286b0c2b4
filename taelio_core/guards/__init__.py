"""What is consulted around every attempt: breakers, budgets and their shared ledger, resilience rules.

Empty on purpose: ``taelio --help`` must not import what it does not use.
"""
