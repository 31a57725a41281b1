"""Where the LLM planner finds its model: the SDK's own variables plus `OVERTURE_` ones.

`OPENAI_API_KEY` and `OPENAI_BASE_URL` are read exactly as the openai SDK reads them, so the same
environment works for OpenAI, Ollama (`http://127.0.0.1:11434/v1`), vLLM and llama.cpp's server.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

OutputMode = Literal["auto", "json_schema", "tools", "json"]


class LLMSettings(BaseSettings):
    """Settings of the LLM planner; every field can be set by an environment variable."""

    model_config = SettingsConfigDict(env_prefix="OVERTURE_LLM_", extra="ignore", populate_by_name=True)

    api_key: SecretStr | None = Field(default=None,
                                      validation_alias=AliasChoices("api_key", "OPENAI_API_KEY"))
    """The endpoint's key (`OPENAI_API_KEY`); local servers need none."""
    base_url: str | None = Field(default=None, validation_alias=AliasChoices("base_url", "OPENAI_BASE_URL"))
    """An OpenAI-compatible endpoint (`OPENAI_BASE_URL`); None means OpenAI itself."""
    model: str = Field(default="gpt-4o-mini",
                       validation_alias=AliasChoices("model", "OVERTURE_MODEL", "OVERTURE_LLM_MODEL"))
    """The model name (`OVERTURE_MODEL`), e.g. `gpt-4o-mini` or `qwen2.5:7b` on Ollama."""
    output_mode: OutputMode = "auto"
    """`json_schema` (native structured output), `tools` (a forced function call), `json` (JSON asked
    for in the prompt, for servers with neither) or `auto`: the first of these the server accepts."""
    timeout_s: float = Field(default=60.0, gt=0)
    """Per-request time limit in seconds."""
    max_retries: int = Field(default=3, ge=0, le=10)
    """SDK retries on connection errors, 408/409/429 and 5xx (with backoff, honouring Retry-After)."""
    repair_rounds: int = Field(default=2, ge=0, le=10)
    """How often validator problems go back to the model before giving up."""
    shortlist_k: int = Field(default=60, ge=1, le=500)
    """Catalogs larger than this are shortlisted to this many actions before prompting."""
    temperature: float = Field(default=0.0, ge=0, le=2)
    """Sampling temperature; 0 keeps plans reproducible."""
    max_tokens: int = Field(default=4096, ge=64)
    """Cap on the answer's length; an answer cut off at the cap is treated as broken output."""

    @property
    def configured(self) -> bool:
        """True when an endpoint can be tried: a key (OpenAI) or a base URL (a local server)."""
        has_key = self.api_key is not None and bool(self.api_key.get_secret_value())
        return has_key or bool(self.base_url)
