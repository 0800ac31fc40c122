"""docs/statistics.md, which README links for the tests it names (it pointed to design §5, a
file the repository does not hold), says the thresholds the code uses."""

from __future__ import annotations

import re
from pathlib import Path

from lib.stats import compare, drift

ROOT = Path(__file__).resolve().parents[1]
DOC = " ".join((ROOT / "docs" / "statistics.md").read_text().split())  # (lines wrapped)


def test_the_thresholds_it_gives_are_the_code_s():
    # each written from the code's constant: a constant changed makes its sentence wrong
    for words in (f"Fewer than {drift.MIN_ROWS} rows on either side",
                  f"PSI on {drift.PSI_BINS} bins",
                  f"warn from {drift.PSI_WARN}, alert from {drift.PSI_ALERT}",
                  f"ε = {drift.PSI_EPS:.0e}".replace("e-0", "e-"),
                  f"alert above {drift.UNSEEN_ALERT_SHARE:.0%} of the current window",
                  f"a fixed sample of {drift.WASSERSTEIN_NOISE_SAMPLE:,} of them",
                  f"default {compare.DEFAULT_MIN_EFFECT}",
                  f"({compare.BOOTSTRAP_RESAMPLES:,} resamples, seed {compare.BOOTSTRAP_SEED})",
                  f"a scale of {compare.ORDINAL_MAX_LEVELS} values or fewer",
                  f"share {compare.MIN_PAIRS} or more cases"):
        assert words in DOC, words


def test_readme_and_the_pages_cite_no_design_section_the_repository_lacks():
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md")]:
        assert not re.search(r"design(\.md)? §", path.read_text()), path
    assert "(docs/statistics.md)" in (ROOT / "README.md").read_text()


def test_readme_says_the_distance_rule_looks_at_both_windows_not_the_reference_alone():
    # "a distance only when both windows have over 1,000 rows (a rule on the reference's size
    # alone: ...)" said the opposite of the rule it gave (review): the rule on the reference's
    # size alone was the one that flagged noise, and is not Sightline's
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "a rule on the reference's size alone" not in readme
    assert ("a distance only when both windows have over 1,000 rows (not on the reference's "
            "size alone, where a small window against a large reference flagged noise as "
            "drift)") in readme
