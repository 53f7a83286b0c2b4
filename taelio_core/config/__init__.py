"""Where configuration comes from: the routing policy file and its parts, settings and keys, prices.

Empty on purpose: ``taelio --help`` must not import what it does not use.
"""
