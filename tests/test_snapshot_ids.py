"""Paper-scale node ids are the identity of every GPU-hour: refactors must not rename them; nor may
they rename another scale's nodes or change what its plan files say (a smoke demo, a budget day)."""

from __future__ import annotations

import json

import pytest

from tests.snapshot_ids import SCALES, SCALES_SNAPSHOT, SNAPSHOT, current_ids, scale_ids


def test_paper_scale_ids_match_the_snapshot() -> None:
    want = json.loads(SNAPSHOT.read_text())
    got = json.loads(json.dumps(current_ids()))
    changed = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    assert not changed, (f"paper-scale ids changed for {changed[:5]}; if intended, run "
                         "`python tests/snapshot_ids.py` and commit the new snapshot")


@pytest.mark.parametrize("scale", SCALES)
def test_other_scales_ids_and_plans_match_the_snapshot(scale: str) -> None:
    want = json.loads(SCALES_SNAPSHOT.read_text())[scale]
    got = scale_ids(scale)
    for key in ("runs", "analyses"):
        gone, new = sorted(set(want[key]) - set(got[key])), sorted(set(got[key]) - set(want[key]))
        assert not gone and not new, (f"{scale}: {key} renamed: {gone[:3]} -> {new[:3]}; if intended, run "
                                      "`python tests/snapshot_ids.py` and commit the new snapshot")
    changed = sorted(k for k in set(want["plans_sha256"]) | set(got["plans_sha256"])
                     if want["plans_sha256"].get(k) != got["plans_sha256"].get(k))
    assert not changed, (f"{scale}: the content of {', '.join(changed)} plan files changed under the same ids; "
                         "if intended, run `python tests/snapshot_ids.py` and commit the new snapshot")
