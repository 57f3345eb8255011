"""Protocols whose settings come from one paper's code rather than the common defaults.

Counting (see ``protocols.py``): every BiaMAT evaluation script counts the adversarial
prediction alone (``adv_only``): the AT code's ``evaluate.py`` and its training-time
selection sum ``model.num_correct`` over adversarial batches; the TRADES code's
``evaluate.py`` sums ``err_pgd`` over ``model(X_pgd)`` (Saehyung-Lee/BiaMAT @ b79caf2).
AutoAttack protocols keep AutoAttack's own ``clean_and_adv`` flags.
"""

from __future__ import annotations

from .catalog import EPS_L2, EPS_LINF, STEP_LINF, PROTOCOLS, Protocol

ADV_ONLY = "adv_only"

# BiaMAT's AT code selects the best checkpoint by test-set PGD-10 with the training attack.
PROTOCOLS.add("pgd10", Protocol("pgd10", "pgd", "linf", EPS_LINF, STEP_LINF, 10, 1, True, counting=ADV_ONLY))
# BiaMAT's AT evaluation (pgd100 / cw100 settings, counted as its evaluate.py does)
PROTOCOLS.add("pgd100-advonly", Protocol("pgd100-advonly", "pgd", "linf", EPS_LINF, STEP_LINF, 100, 1, True,
                                         counting=ADV_ONLY))
PROTOCOLS.add("cw100-advonly", Protocol("cw100-advonly", "cw", "linf", EPS_LINF, STEP_LINF, 100, 1, True,
                                        counting=ADV_ONLY))

# BiaMAT's TRADES code (HPARAMS.md §2.1): eps 0.031, evaluation step 0.003, random start;
# checkpoint selection with the training attack's step 0.007.
EPS_TRADES = 0.031
PROTOCOLS.add("pgd10-trades", Protocol("pgd10-trades", "pgd", "linf", EPS_TRADES, 0.007, 10, 1, True,
                                       counting=ADV_ONLY))
PROTOCOLS.add("pgd100-trades", Protocol("pgd100-trades", "pgd", "linf", EPS_TRADES, 0.003, 100, 1, True,
                                        counting=ADV_ONLY))
PROTOCOLS.add("cw100-trades", Protocol("cw100-trades", "cw", "linf", EPS_TRADES, 0.003, 100, 1, True,
                                       counting=ADV_ONLY))
PROTOCOLS.add("aa-standard-trades", Protocol("aa-standard-trades", "autoattack", "linf", EPS_TRADES,
                                             version="standard"))

# Stand-ins for AutoAttack at smoke scale only (config/scales/smoke.yaml `substitute`):
# APGD-CE alone, so a 100-example evaluation of a model that learned takes seconds (the demo
# has 44 of them). Never for reported numbers.
PROTOCOLS.add("aa-smoke", Protocol("aa-smoke", "autoattack", "linf", EPS_LINF, version="custom",
                                   attacks=("apgd-ce",)))
PROTOCOLS.add("aa-smoke-trades", Protocol("aa-smoke-trades", "autoattack", "linf", EPS_TRADES, version="custom",
                                          attacks=("apgd-ce",)))

# Subset AT's code (mlosch/SAT model/evaluations.py:1235-1243; notes §2.4, T5) runs AutoAttack
# version='custom' with attacks_to_run [apgd-ce, apgd-t] on CIFAR-100 and ImageNet-200 CSAT: the
# constructor's APGD-CE with 5 restarts and APGD-T with 9 target classes, no FAB-T, no Square.
# Pinned here (restarts, targets) so both AutoAttack backends run exactly that.
REDUCED = ("apgd-ce", "apgd-t")
PROTOCOLS.add("aa-l2-reduced", Protocol("aa-l2-reduced", "autoattack", "l2", EPS_L2, restarts=5, version="custom",
                                        attacks=REDUCED, targets=9))
# ImageNet-200: L2 eps 3.0, standard (ESAT) and the reduced custom set (CSAT)
PROTOCOLS.add("aa-l2-eps3-standard", Protocol("aa-l2-eps3-standard", "autoattack", "l2", 3.0, version="standard"))
PROTOCOLS.add("aa-l2-eps3-reduced", Protocol("aa-l2-eps3-reduced", "autoattack", "l2", 3.0, restarts=5,
                                             version="custom", attacks=REDUCED, targets=9))
# their smoke stand-ins: L2 APGD-CE alone, one restart of 20 iterations (about 2 s for 100 images
# of the smoke CNN on a CPU, against 8 s for 100 iterations)
PROTOCOLS.add("aa-l2-smoke", Protocol("aa-l2-smoke", "autoattack", "l2", EPS_L2, steps=20, version="custom",
                                      attacks=("apgd-ce",), targets=1))
PROTOCOLS.add("aa-l2-eps3-smoke", Protocol("aa-l2-eps3-smoke", "autoattack", "l2", 3.0, steps=20, version="custom",
                                           attacks=("apgd-ce",), targets=1))
# The cpu scale's stand-in for AutoAttack-L2 (real CIFAR-10, small CNN): APGD-CE alone, one restart of
# its default 100 iterations; full AutoAttack-L2 took over 12 CPU-minutes per run on 1,000 images there
PROTOCOLS.add("aa-l2-cpu", Protocol("aa-l2-cpu", "autoattack", "l2", EPS_L2, version="custom",
                                    attacks=("apgd-ce",), targets=1))

# BiaMAT 000 Table 8 (PGD-20 beside PGD-100 at the AT settings) and Table 15 (FGSM on robust-dataset
# students), counted as BiaMAT's scripts count (notes/biamat.md §2.4).
PROTOCOLS.add("pgd20-advonly", Protocol("pgd20-advonly", "pgd", "linf", EPS_LINF, STEP_LINF, 20, 1, True,
                                        counting=ADV_ONLY))
PROTOCOLS.add("fgsm-advonly", Protocol("fgsm-advonly", "pgd", "linf", EPS_LINF, EPS_LINF, 1, 1, False,
                                       counting=ADV_ONLY))
