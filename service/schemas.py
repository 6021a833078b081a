"""Request and response bodies of the HTTP API (what ``/docs.json`` shows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FeatureValue = int | float | str | bool


class Instance(BaseModel):
    """One row to predict."""

    model_config = ConfigDict(extra="forbid")

    features: dict[str, Any] = Field(
        description="Model inputs by name; numbers or category strings, per the model's schema."
    )
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Optional client id (e.g. a transaction id); becomes the prediction id.",
    )
    groups: dict[str, str | None] = Field(
        default_factory=dict,
        description="Sensitive attribute values for fairness slicing; not model inputs.",
    )


class PredictRequest(BaseModel):
    """Body of ``POST /predict``."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Instance] = Field(description="Rows to predict, answered in this order.")


class ModelInfo(BaseModel):
    """The model that answered."""

    name: str
    version: str


class Prediction(BaseModel):
    """One prediction, in input order."""

    prediction_id: str
    label: str | None = None
    scores: dict[str, float] | None = None
    value: float | None = None


class PredictResponse(BaseModel):
    """Body of ``POST /predict``."""

    model: ModelInfo
    predictions: list[Prediction]


class LabelItem(BaseModel):
    """One late label: the true class (classifiers) or value (regressors) of a prediction."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str = Field(min_length=1, max_length=128)
    label: str | int | float | bool | None = Field(
        description="A class name for classifiers, a number for regressors."
    )


FeedbackStatusName = Literal["matched", "duplicate", "conflict", "unknown", "invalid", "expired"]


class FeedbackRequest(BaseModel):
    """Body of ``POST /feedback``."""

    model_config = ConfigDict(extra="forbid")

    labels: list[LabelItem] = Field(description="Late labels, answered in this order.")


class LabelResult(BaseModel):
    """What happened to one label."""

    prediction_id: str
    status: FeedbackStatusName


class FeedbackResponse(BaseModel):
    """Body of ``POST /feedback``."""

    results: list[LabelResult]
    counts: dict[str, int]
