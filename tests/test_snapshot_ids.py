"""Paper-scale node ids are the identity of every GPU-hour: refactors must not rename them."""

from __future__ import annotations

import json

from tests.snapshot_ids import SNAPSHOT, current_ids


def test_paper_scale_ids_match_the_snapshot() -> None:
    want = json.loads(SNAPSHOT.read_text())
    got = json.loads(json.dumps(current_ids()))
    changed = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    assert not changed, (f"paper-scale ids changed for {changed[:5]}; if intended, run "
                         "`python tests/snapshot_ids.py` and commit the new snapshot")
