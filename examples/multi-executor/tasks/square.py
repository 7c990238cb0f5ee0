import os

from ork import task
from pydantic import BaseModel


class Input(BaseModel):
    numbers: list[int]


class Output(BaseModel):
    squares: list[int]
    ran_on: str


@task
def main(input: Input) -> Output:
    where = "cloud run execution " + os.environ.get("CLOUD_RUN_EXECUTION", "?")
    return Output(squares=[n * n for n in input.numbers], ran_on=where)
