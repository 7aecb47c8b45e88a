"""Configuration models of the member sources (the ``source = {...}`` table of an audience)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvSourceSpec(_Spec):
    """CSV file(s): a path or glob relative to the config file; ``.gz`` is read transparently."""

    kind: Literal["csv"]
    path: str = Field(min_length=1)
    email_column: str = Field(default="email", min_length=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"


SourceSpec = Annotated[CsvSourceSpec, Field(discriminator="kind")]
