"""What the page may send: the start form and the prompt editor, checked field by field.

The start form takes the options of ``aimeta rate`` except those that name other files: the
database comes from the server's settings, the prompts from the prompt editor (the settings'
prompts folder), and a CSV path must lie inside the folder being rated. So a request can only
make the server read and write inside the folder it names and the places set at start-up.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aimeta.pipelines import rate
from aimeta.settings import Settings

MAX_PROMPT_BYTES = 32 * 1024
# Start-form fields that replace a setting of the server for this one job.
SETTING_FIELDS = (
    "api_urls",
    "model",
    "temperature",
    "size",
    "quality",
    "workers",
    "converter",
    "sidecar",
    "max_tokens",
)


class StartForm(BaseModel):
    """The folder to rate and the options of ``aimeta rate``; omitted ones keep the defaults."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    folder: str = Field(description="Folder of images to rate (on the server's machine).")
    xmp: bool = Field(True, description="Write XMP sidecars.")
    csv: bool = Field(True, description="Write the ratings CSV.")
    csv_path: str | None = Field(None, description="CSV file inside the folder.")
    recursive: bool = Field(False, description="Rate sub-folders too.")
    skip_existing: bool = Field(True, description="Skip images already rated by this model.")
    dry_run: bool = Field(False, description="List what would be rated; send nothing.")
    api_urls: list[str] | None = Field(None, description="OpenAI-compatible server URLs.")
    model: str | None = Field(None, description="Model tag; default: the one loaded.")
    temperature: float | None = Field(None, description="Sampling temperature, 0-2.")
    size: int | None = Field(None, description="Longest side of the image sent, in pixels.")
    quality: int | None = Field(None, description="JPEG quality of the image sent, 1-100.")
    workers: int | None = Field(None, description="Model requests at once, 1-64.")
    converter: str | None = Field(None, description="auto, darktable or pillow.")
    sidecar: str | None = Field(None, description="darktable or adobe.")
    max_tokens: int | None = Field(None, description="Token limit of one answer.")

    @field_validator("api_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        # A form field or a text box gives one string: comma, space or newline separated.
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @field_validator("model", "converter", "sidecar", "csv_path", mode="after")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class PromptsForm(BaseModel):
    """The two prompts of the editor, each 1 to 32 KB of UTF-8."""

    model_config = ConfigDict(extra="forbid")

    system: str = Field(description="The system prompt.")
    user: str = Field(description="The user prompt template ({criteria}, {max_keywords}).")

    @field_validator("system", "user")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        if len(value.encode("utf-8")) > MAX_PROMPT_BYTES:
            raise ValueError(f"the prompt is longer than {MAX_PROMPT_BYTES // 1024} KB")
        return value


def field_errors(error: ValidationError) -> dict[str, str]:
    """Pydantic's errors as ``{field: message}``, one plain sentence per field."""
    problems: dict[str, str] = {}
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "body"
        if item["type"] == "extra_forbidden":
            message = "not an option of the web page"
        elif item["type"] == "missing":
            message = "this field is required"
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        problems.setdefault(name, message)
    return problems


def job_from_form(
    settings: Settings, form: StartForm
) -> tuple[Settings, rate.RateOptions, dict[str, str]]:
    """The job's settings and options, and ``{field: message}`` for every problem."""
    problems: dict[str, str] = {}
    folder = Path(form.folder).expanduser() if form.folder else None
    if folder is None:
        problems["folder"] = "give the folder of images to rate"
        folder = Path("/nonexistent-folder")
    else:
        folder = folder.resolve()
    csv_path: Path | None = None
    if form.csv_path:
        given = Path(form.csv_path).expanduser()
        csv_path = (given if given.is_absolute() else folder / given).resolve()
        if not csv_path.is_relative_to(folder) or csv_path.suffix.lower() != ".csv":
            problems["csv_path"] = "the CSV must be a .csv file inside the folder being rated"
    changes: dict[str, Any] = {
        name: tuple(value) if name == "api_urls" else value
        for name in SETTING_FIELDS
        if (value := getattr(form, name)) is not None
    }
    job_settings = dataclasses.replace(settings, **changes)
    options = rate.RateOptions(
        folder=folder,
        xmp=form.xmp,
        csv=form.csv,
        csv_path=csv_path,
        recursive=form.recursive,
        skip_existing=form.skip_existing,
        dry_run=form.dry_run,
    )
    for name, message in rate.check_options(job_settings, options).items():
        problems.setdefault(name, message)
    return job_settings, options, problems


def check_start(
    settings: Settings, raw: dict[str, Any]
) -> tuple[Settings, rate.RateOptions | None, dict[str, str]]:
    """Check a start request; every invalid field gets its message, not just the first kind.

    Fields of the wrong type are reported, then left out so that the rest (the folder, the
    model server, ...) is still checked by the pipeline's own ``check_options``.
    """
    try:
        form = StartForm.model_validate(raw)
    except ValidationError as exc:
        problems = field_errors(exc)
        try:
            rest = StartForm.model_validate({k: v for k, v in raw.items() if k not in problems})
        except ValidationError:
            return settings, None, problems
        _settings, _options, more = job_from_form(settings, rest)
        return settings, None, {**more, **problems}
    return job_from_form(settings, form)


def form_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """Form data as the start form expects it: an unticked box is absent, so absent is False."""
    values: dict[str, Any] = {key: value for key, value in raw.items() if value != ""}
    for name in ("xmp", "csv", "recursive", "skip_existing", "dry_run"):
        values.setdefault(name, False)
    return values
