from ork import task
from pydantic import BaseModel
from src.data_ops import summarize_data


class FetchOutput(BaseModel):
    data: str


class Input(BaseModel):
    fetch: FetchOutput  # receives the output of the fetch task


class Output(BaseModel):
    total_chars: int
    total_lines: int
    non_empty_lines: int


@task
def main(input: Input) -> Output:
    stats = summarize_data(input.fetch.data)
    return Output(**stats)
