"""Reliability scenarios of issue 6: faults injected into real processes, nothing lost.

Each test module is one scenario; ``ledger`` accounts for every input event and
``traffic`` produces steady streams. Figures and rerun commands: docs/reliability.md.
"""
