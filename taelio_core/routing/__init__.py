"""Routing one request: the router, its chain walk, attempts, streams, the story flow and the values they pass.

Empty on purpose: ``taelio --help`` must not import what it does not use.
"""
