"""Request and response bodies of the HTTP API (what ``/docs.json`` shows)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from instrumentation import ModelSpec
from instrumentation.metrics.fairness import MISSING_GROUP, OVERFLOW_GROUP
from instrumentation.spec import MAX_GROUP_VALUE_LENGTH, MAX_MAGNITUDE

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
        properties[feature.name] = {
            "type": "number",
            "minimum": -MAX_MAGNITUDE if feature.minimum is None else feature.minimum,
            "maximum": MAX_MAGNITUDE if feature.maximum is None else feature.maximum,
        }
    return {
        "properties": properties,
        "required": [f.name for f in spec.features],
        "additionalProperties": False,
    }


def groups_schema(spec: ModelSpec) -> dict[str, Any]:
    """JSON schema of one instance's ``groups``: the spec's sensitive attributes, each optional."""
    text = {
        "type": "string",
        "maxLength": MAX_GROUP_VALUE_LENGTH,
        "not": {"enum": [MISSING_GROUP, OVERFLOW_GROUP]},
        "description": f"Any value but {MISSING_GROUP!r} and {OVERFLOW_GROUP!r} (the buckets "
        "of missing and overflowing values).",
    }
    value = {"anyOf": [text, {"type": "null"}]}
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


class ValidationIssue(BaseModel):
    """One problem BentoML's schema check found (pydantic's error, without the input)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="pydantic's error type, e.g. 'missing', 'extra_forbidden'.")
    loc: list[str | int] = Field(description="Where in the body: keys and list indexes.")
    msg: str


class ErrorBody(BaseModel):
    """Every error answer: the text names the field and what was expected."""

    error: str = Field(
        description="'<field>: <what was expected>', e.g. 'instances[1].features.hour: "
        "required feature is missing'; or BentoML's 'N validation errors for …'."
    )
    detail: list[ValidationIssue] | None = Field(
        default=None, description="Present on BentoML's schema check's 400: one per problem."
    )


class Figure(BaseModel):
    """One figure of a window: its value, its sample count and, where one applies, an interval."""

    model_config = ConfigDict(extra="allow")

    value: float | None = Field(description="null where undefined (no samples), never a fake 0.")
    n: int = Field(description="Samples behind the value.")
    lower: float | None = None
    upper: float | None = None


class WindowReport(BaseModel):
    """The figures of one window (e.g. ``5m``), summed from the store's buckets at call time."""

    model_config = ConfigDict(extra="allow")

    n_predictions: int
    n_labels: int
    quality: dict[str, Any] = Field(
        description="Per metric a Figure, or per class / average a Figure (classifiers)."
    )
    fairness: dict[str, Any] = Field(description="Per sensitive attribute, per metric.")
    drift: dict[str, Any] = Field(description="Per feature: PSI and Jensen-Shannon distance.")
    estimated: dict[str, Any] = Field(description="Performance estimated before labels arrive.")


class ServedModel(ModelInfo):
    """The model the service serves."""

    model_config = ConfigDict(extra="allow")


class MonitorSnapshot(BaseModel):
    """Body of ``GET /monitor``: every prediction and label acknowledged before the call."""

    model_config = ConfigDict(extra="allow")

    model: ServedModel
    windows: dict[str, WindowReport] = Field(
        description="The serving model version's figures, per window of MONITOR_WINDOWS."
    )


class MonitorHistory(BaseModel):
    """Body of ``GET /monitor/history``: each figure for the window ending at each step."""

    model_config = ConfigDict(extra="allow")

    model: ServedModel
    window: float = Field(description="Seconds.")
    step: float = Field(description="Seconds between points.")
    from_: float = Field(alias="from", description="Epoch seconds of the first point.")
    to: float = Field(description="Epoch seconds of the last point.")
    versions: dict[str, dict[str, Any]] = Field(
        description="Per model version, per figure: a list of {t, value, lower, upper, n}."
    )
