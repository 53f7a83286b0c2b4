"""The sandbox: routing policies simulated on synthetic or replayed traffic, deciding as live traffic does.

A discrete-event simulation over the decision core: ``events`` (the queue of
events in virtual time), ``outcomes`` (provider luck drawn ahead, the outcome
of a try), ``walk`` (a request's chain walk over the core), ``engine`` (one
run), ``columns`` (its results), ``arm`` (one policy and seed, on the engine
that can run it), ``processes`` (runs in worker processes). ``replay`` and
``loop`` are the older engine (the live async router on a virtual-time loop)
for policies the walk does not cover yet. ``models`` (provider models,
scenarios), ``traffic`` (synthetic or from the log), ``simulation`` (A vs B
over seeds), ``results`` (summaries and deltas), ``fitting`` (models from the
log), ``policy_edit`` (tables and TOML), ``store`` (saved runs).
"""
