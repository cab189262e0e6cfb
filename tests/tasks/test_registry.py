"""The task catalogue covers every family and names reference predictors for every task."""

from workbench.tasks import registry


def test_catalogue_lists_every_family_with_predictors():
    rows = registry.describe_tasks(samples=False)
    assert {r["family"] for r in rows} == {"regression", "markov", "classification", "boolean", "algorithmic"}
    assert len({r["name"] for r in rows}) == len(rows)
    for r in rows:
        assert r["predictors"] and r["params"], r["name"]
