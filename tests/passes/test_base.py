"""The pass contract's records."""


def test_pass_record_merges_counts():
    from tfopt.passes.base import PassRecord

    rec = PassRecord("identity")
    rec.add_notes(["3 identity-like nodes spliced out"])
    rec.add_notes(["2 identity-like nodes spliced out", "1 other thing"])
    assert rec.notes == ["5 identity-like nodes spliced out", "1 other thing"]
