"""Kayenta's own MannWhitneyClassifier test cases, run through `kayenta_classify`.

The inputs and expected classes are transcribed as data from Kayenta's
`ClassifierSuite.scala` (tests/fixtures/kayenta/classifier_suite.json names
the repository, path and commit). Agreement is reported case by case in
docs/analysis.md; a difference would have to be deliberate and explained
there, so any disagreement fails here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from safeship.analysis.latency import kayenta_classify

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kayenta" / "classifier_suite.json"
SUITE = json.loads(FIXTURE.read_text())


def test_the_fixture_names_its_source_and_holds_every_case() -> None:
    assert SUITE["source"]["repository"] == "spinnaker/kayenta"
    assert len(SUITE["source"]["commit"]) == 40
    assert len(SUITE["cases"]) == 34


@pytest.mark.parametrize("case", SUITE["cases"], ids=lambda c: c["name"])
def test_kayentas_classifier_suite_agrees(case: dict[str, Any]) -> None:
    judged = kayenta_classify(
        case["experiment"],
        case["control"],
        tolerance=case["tolerance"],
        confidence=case["confidence"],
        effect_thresholds=tuple(case["effect_size_thresholds"]),
        critical_thresholds=tuple(case["critical_thresholds"]),
        effect_measure=case["effect_size_measure"],
        direction=case["direction"].lower(),
        critical=case["is_critical"],
        missing_is_pass=case["nan_strategy"] == "Replace",
    )
    expected = case["expected"]
    assert judged.classification.value.lower() == expected["classification"].lower()
    if "critical" in expected:
        assert judged.critical is expected["critical"]
    if "deviation" in expected:
        if expected["deviation"] == "NaN":
            assert math.isnan(judged.deviation)
        else:
            assert judged.deviation == expected["deviation"]
    if expected.get("reason_nonempty"):
        assert judged.reason
