from typing import List

from ork import Context, task
from pydantic import BaseModel


class Word(BaseModel):
    word: str
    count: int


class Input(BaseModel):
    words: int
    distinct: int
    doubled: int
    top: List[Word]


class Output(BaseModel):
    line: str
    ratio: float


@task
def main(input: Input, ctx: Context) -> Output:
    ctx.log.info(f"summarizing {input.words} words in {ctx.workflow_name}")
    top = input.top[0].word if input.top else "-"
    return Output(line=f"{input.words} words ({input.distinct} distinct, doubled {input.doubled}), top '{top}'",
                  ratio=round(input.distinct / input.words, 3))
