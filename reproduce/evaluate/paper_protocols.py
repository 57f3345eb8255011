"""Protocols whose settings come from one paper's code rather than the common defaults."""

from __future__ import annotations

from .protocols import EPS_LINF, STEP_LINF, PROTOCOLS, Protocol

# BiaMAT's AT code selects the best checkpoint by test-set PGD-10 with the training attack.
PROTOCOLS.add("pgd10", Protocol("pgd10", "pgd", "linf", EPS_LINF, STEP_LINF, 10, 1, True))

# BiaMAT's TRADES code (HPARAMS.md §2.1): eps 0.031, evaluation step 0.003, random start;
# checkpoint selection with the training attack's step 0.007.
EPS_TRADES = 0.031
PROTOCOLS.add("pgd10-trades", Protocol("pgd10-trades", "pgd", "linf", EPS_TRADES, 0.007, 10, 1, True))
PROTOCOLS.add("pgd100-trades", Protocol("pgd100-trades", "pgd", "linf", EPS_TRADES, 0.003, 100, 1, True))
PROTOCOLS.add("cw100-trades", Protocol("cw100-trades", "cw", "linf", EPS_TRADES, 0.003, 100, 1, True))
PROTOCOLS.add("aa-standard-trades", Protocol("aa-standard-trades", "autoattack", "linf", EPS_TRADES,
                                             version="standard"))

# Stand-ins for AutoAttack at smoke scale only (config/scales/smoke.yaml `substitute`):
# the two APGD attacks, so a 100-example evaluation takes seconds. Never for reported numbers.
PROTOCOLS.add("aa-smoke", Protocol("aa-smoke", "autoattack", "linf", EPS_LINF, version="custom",
                                   attacks=("apgd-ce", "apgd-dlr")))
PROTOCOLS.add("aa-smoke-trades", Protocol("aa-smoke-trades", "autoattack", "linf", EPS_TRADES, version="custom",
                                          attacks=("apgd-ce", "apgd-dlr")))
