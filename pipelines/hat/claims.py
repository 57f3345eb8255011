"""HAT claims the expression grammar cannot say: the toy's clean-accuracy drop, which the paper
publishes as a number (`clean_drop`, Figure 2 caption) while a regenerated grid gives the two
clean accuracies it is the difference of."""

from __future__ import annotations

from typing import Any, Mapping

DROP, TOL = 9.0, 3.0  # "about 9% drop in accuracy" [27], read as 9 +- 3 points


def toy_clean_drop(values: Mapping[Any, Mapping[str, Mapping[str, Any]]], claim: Any) -> tuple[str, list[str]]:
    """|drop - 9| <= 3, the drop read from `at.clean_drop` where published, else standard.clean - at.clean."""
    own = values.get(None, {})
    at, std = own.get("at", {}), own.get("standard", {})
    drop, how = at.get("clean_drop"), "at.clean_drop"
    if not isinstance(drop, float):
        if not (isinstance(std.get("clean"), float) and isinstance(at.get("clean"), float)):
            return "unknown", ["missing at.clean_drop and standard.clean or at.clean"]
        drop, how = std["clean"] - at["clean"], f"standard.clean - at.clean = {std['clean']:g} - {at['clean']:g}"
    margin = TOL - abs(drop - DROP)
    verdict = "within noise" if abs(margin) < claim.noise else ("holds" if margin >= 0 else "fails")
    return verdict, [f"abs(drop - {DROP:g}) <= {TOL:g} [{how} = {drop:.2f}]: {'yes' if margin >= 0 else 'NO'}"]
