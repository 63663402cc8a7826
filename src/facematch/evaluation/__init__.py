"""Evaluation sets and harnesses built on top of the engine.

The engine never imports this package: it holds benchmark data generators
(:mod:`facematch.evaluation.kyc`) and the code that scores the engine on them.
"""
