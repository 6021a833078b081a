"""Request and response bodies of the HTTP API (what ``/docs.json`` shows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from instrumentation import ModelSpec
from instrumentation.spec import MAX_GROUP_VALUE_LENGTH

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
    recorded: bool = Field(
        default=True,
        description=(
            "False when the prediction could not be recorded (the store and the local "
            "spool both failed): no label can join it."
        ),
    )


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


def features_schema(spec: ModelSpec) -> dict[str, Any]:
    """JSON schema of one instance's ``features`` for ``spec``: names, types, ranges, categories.

    Documentation for clients and fuzzers: requests are still checked by the spec
    (``ModelSpec.validate_features``), whose errors name the field. Categories are
    listed as examples, not an enum: an unseen category is accepted and counted as
    drift.
    """
    properties: dict[str, Any] = {}
    for feature in spec.features:
        if feature.kind == "category":
            known = ", ".join(feature.categories)
            properties[feature.name] = {
                "type": "string",
                "description": f"category; seen in training: {known}" if known else "category",
                **({"examples": list(feature.categories)} if feature.categories else {}),
            }
            continue
        number: dict[str, Any] = {"type": "number"}
        if feature.minimum is not None:
            number["minimum"] = feature.minimum
        if feature.maximum is not None:
            number["maximum"] = feature.maximum
        properties[feature.name] = number
    return {
        "properties": properties,
        "required": [f.name for f in spec.features],
        "additionalProperties": False,
    }


def groups_schema(spec: ModelSpec) -> dict[str, Any]:
    """JSON schema of one instance's ``groups``: the spec's sensitive attributes, each optional."""
    value = {"anyOf": [{"type": "string", "maxLength": MAX_GROUP_VALUE_LENGTH}, {"type": "null"}]}
    return {
        "properties": {attribute: value for attribute in spec.sensitive_attributes},
        "additionalProperties": False,
    }


def predict_request_for(spec: ModelSpec) -> type[PredictRequest]:
    """``PredictRequest`` whose OpenAPI schema shows ``spec``'s features and group keys."""
    instance = create_model(
        "Instance",
        __base__=Instance,
        __doc__=f"One row for {spec.name} to predict.",
        features=(
            dict[str, Any],
            Field(
                description=Instance.model_fields["features"].description,
                json_schema_extra=features_schema(spec),
            ),
        ),
        groups=(
            dict[str, str | None],
            Field(
                default_factory=dict,
                description=Instance.model_fields["groups"].description,
                json_schema_extra=groups_schema(spec),
            ),
        ),
    )
    return create_model(
        "PredictRequest",
        __base__=PredictRequest,
        __doc__=PredictRequest.__doc__,
        instances=(
            list[instance],  # type: ignore[valid-type]  # a class made at run time
            Field(description=PredictRequest.model_fields["instances"].description),
        ),
    )
