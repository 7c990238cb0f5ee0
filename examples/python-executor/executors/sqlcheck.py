"""A custom executor: reads a task's SQL file, counts its statements and 'costs' them (no database needed)."""
from pathlib import Path

from ork import Context, TaskError, executor
from pydantic import BaseModel


class Config(BaseModel):
    warehouse: str
    cost_per_statement: float = 1.0


class Output(BaseModel):
    statements: int
    estimated_cost: float
    warehouse: str
    after: list


@executor
class SqlCheckExecutor:
    def __init__(self, config: Config):
        self.config = config

    def run(self, config_file: str, ctx: Context, upstream: dict = {}) -> Output:
        sql = Path(config_file).read_text()
        statements = [s for s in sql.split(";") if s.strip()]
        if not statements:
            raise TaskError("no SQL statements", details={"file": config_file})
        ctx.log.info("%s: %d statement(s) for %s", ctx.task_name, len(statements), self.config.warehouse)
        ctx.metrics.record("statements", len(statements), labels={"task": ctx.task_name})
        return Output(statements=len(statements), estimated_cost=len(statements) * self.config.cost_per_statement,
                      warehouse=self.config.warehouse, after=sorted(upstream))
