from ork import task
from pydantic import BaseModel
from src.data_ops import fetch_data


class Input(BaseModel):
    url: str


class Output(BaseModel):
    data: str


@task
def main(input: Input) -> Output:
    data = fetch_data(input.url)
    return Output(data=data)
