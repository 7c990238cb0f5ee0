"""Runs after the sales mart and its tests: reads their dbt run results from the upstream outputs."""
from ork import task


@task
def main(input: dict) -> dict:
    tests = input["dbt.marts.fct_sales.test"]
    return {
        "mart": "fct_sales",
        "tests_passed": sum(1 for n in tests["nodes"] if n["status"] == "pass"),
        "tests_status": tests["status"],
    }
