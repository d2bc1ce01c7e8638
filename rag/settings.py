"""Settings: one typed, described pydantic-settings model in six groups, read from RAG_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

# Package data: rag/data/{corpus,prompts} link to the top-level folders in a checkout and are copied into
# the wheel, so the same lookup works from a checkout, an editable install and an installed wheel. The
# package is installed unzipped, so the resources are real files (Paths).
DATA_DIR = Path(str(files("rag") / "data"))
CORPUS_PATH = DATA_DIR / "corpus" / "papers.jsonl"
QUESTIONS_PATH = DATA_DIR / "corpus" / "questions.jsonl"
DEV_QUESTIONS_PATH = DATA_DIR / "corpus" / "questions-dev.jsonl"
FRESH_QUESTIONS_PATH = DATA_DIR / "corpus" / "questions-fresh.jsonl"
FRESH2_QUESTIONS_PATH = DATA_DIR / "corpus" / "questions-fresh2.jsonl"
FRESH3_QUESTIONS_PATH = DATA_DIR / "corpus" / "questions-fresh3.jsonl"
FRESH4_QUESTIONS_PATH = DATA_DIR / "corpus" / "questions-fresh4.jsonl"
FRESH5_QUESTIONS_PATH = DATA_DIR / "corpus" / "questions-fresh5.jsonl"
# Question sets written blind (never seeing the answering code), each split in halves: tune may be fitted on, test never.
BLIND_SETS = (DEV_QUESTIONS_PATH, FRESH_QUESTIONS_PATH, FRESH2_QUESTIONS_PATH, FRESH3_QUESTIONS_PATH,
              FRESH4_QUESTIONS_PATH, FRESH5_QUESTIONS_PATH)
PROMPTS_DIR = DATA_DIR / "prompts"


G = TypeVar("G", bound=BaseModel)


def _default_data_dir() -> Path:
    """Where the embedded index lives unless RAG_DATA_DIR says otherwise."""
    return Path.home() / ".local" / "share" / "paperchat"


def _shown(default: str) -> dict[str, str]:
    """The default as the README table shows it (for defaults computed at run time)."""
    return {"shown_default": default}


class StoreSettings(BaseModel):
    """Store: where the index lives and what goes into it."""

    data_dir: Path = Field(default_factory=_default_data_dir, description="Directory of the embedded Chroma index.",
                           json_schema_extra=_shown("~/.local/share/paperchat"))
    chroma_url: str | None = Field(default=None, description="Chroma server URL (http://host:port); embedded if unset.")
    collection: str = Field(default="paperchat", description="Chroma collection name for passages (papers go in "
                                                             "NAME-papers).")
    corpus: Path = Field(default=CORPUS_PATH, description="Corpus JSONL ingested when the index is built.",
                         json_schema_extra=_shown("the bundled corpus/papers.jsonl"))
    embeddings: str = Field(
        default="minilm",
        description="Embedding model: 'minilm' (all-MiniLM-L6-v2, ONNX, offline) or 'openai:MODEL'.",
    )
    embeddings_base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL of the 'openai:MODEL' embeddings (TEI, vLLM, Ollama, "
                                  "llama.cpp …).", json_schema_extra=_shown("RAG_LLM_BASE_URL"))
    embeddings_api_key: SecretStr | None = Field(default=None, description="API key of the embeddings server.",
                                                 json_schema_extra=_shown("RAG_LLM_API_KEY"))
    embeddings_batch: int = Field(default=64, ge=1, le=2048, description="Texts per embeddings request "
                                                                         "('openai:MODEL').")
    embeddings_concurrency: int = Field(default=4, ge=1, le=64, description="Embeddings requests in flight at once "
                                                                            "('openai:MODEL').")
    chunk_tokens: int = Field(default=160, ge=32, le=2000, description="Max tokens per chunk (cl100k).")
    chunk_overlap: int = Field(default=32, ge=0, le=500, description="Token overlap between chunks.")
    min_abstract_chars: int = Field(default=40, ge=1, description="Shortest abstract ingest accepts (characters).")
    max_abstract_chars: int = Field(
        default=100_000, ge=100, description="Longest abstract ingest accepts (characters); split longer texts."
    )
    pdf_memory_mb: int = Field(default=1024, ge=128, description="Memory (MB) the child process reading a PDF may "
                               "use: a decompression bomb is refused with one line, the app goes on.")
    pdf_timeout: float = Field(default=120.0, gt=0, description="Seconds a PDF may take to read before it is given up.")
    pdf_max_stream_mb: int = Field(default=100, ge=1, description="Most MB one compressed stream of a PDF (a page's "
                                   "content, a form, a font; images aside) may decode to.")
    pdf_max_decoded_mb: int = Field(default=1000, ge=1, description="Most MB a PDF's compressed streams (images aside) "
                                    "may decode to in all.")
    view_dir: Path | None = Field(
        default=None, description="Where the derived retrieval view (BM25 index, corpus tables, passage records) is "
                                  "kept, one folder per index generation; app instances sharing a Chroma server may "
                                  "share it. Default: the 'views' folder of the data directory.",
    )
    view_check_seconds: float = Field(
        default=1.0, ge=0, description="How often (at most) a running process checks the index for other writers' "
                                       "changes; 0 checks on every question.",
    )


    @field_validator("chroma_url")
    @classmethod
    def _chroma_url_is_an_address(cls, value: str | None) -> str | None:
        """A value that cannot be a server's address ('notaurl') is refused as such, not tried as a host."""
        if value and chroma_address(value) is None:
            raise ValueError(f"{value!r} is not a Chroma server URL; give it as http://host:port")
        return value or None

    def chroma_server(self) -> tuple[str, int, bool] | None:
        """(host, port, https) of the Chroma server at chroma_url; None when the index is embedded."""
        return chroma_address(self.chroma_url) if self.chroma_url else None


def chroma_address(url: str) -> tuple[str, int, bool] | None:
    """(host, port, https) of a Chroma server URL ('http://host:port', or 'host:port'; the port defaults to Chroma's
    8000 when a scheme is given), None when it is not one."""
    from urllib.parse import urlparse

    if not url or any(c.isspace() for c in url):
        return None
    parsed = urlparse(url if "//" in url else f"http://{url}")
    try:
        port = parsed.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or ("//" not in url and port is None):
        return None
    return parsed.hostname, port or 8000, parsed.scheme == "https"


class RetrievalSettings(BaseModel):
    """Retrieval: which passages an answer is built from."""

    retrieval: Literal["hybrid", "dense"] = Field(default="hybrid", description="Retrieval mode: 'hybrid' (dense + "
                                                                                "BM25, RRF) or 'dense'.")
    top_k: int = Field(default=6, ge=1, le=50, description="Passages given to the answerer.")
    per_paper_cap: int = Field(default=3, ge=1, le=50, description="Max passages from one paper.")
    fetch_k: int = Field(default=30, ge=1, le=500, description="Candidates fetched from each retriever.")
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal-rank-fusion constant.")


class AnswerSettings(BaseModel):
    """Answer: who answers, and the limits on questions and answers."""

    answerer: Literal["extractive", "openai", "local"] = Field(default="extractive", description="Answerer: "
                                                               "'extractive', 'openai' or 'local'.")
    abstain_threshold: float = Field(
        default=0.25, description="Abstain when the best passage's question similarity is below this."
    )
    max_question_chars: int = Field(default=2000, ge=10, description="Longest question accepted.")
    max_answer_sentences: int = Field(default=4, ge=1, le=20, description="Sentences in an extractive answer.")
    prompt_token_budget: int = Field(default=1500, ge=200, description="Max tokens of passages sent to an LLM.")
    local_prompt_token_budget: int = Field(default=400, ge=100, description="Passage tokens for the local model.")
    answer_timeout: float = Field(
        default=60.0, gt=0, description="Overall seconds the LLM may take for one answer (condense + answer, streamed)."
    )


class LLMSettings(BaseModel):
    """LLM: the OpenAI-compatible endpoint and the local llama.cpp model."""

    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible base URL (vLLM, Ollama, llama.cpp, "
                                     "LM Studio …).", json_schema_extra=_shown("unset (OpenAI)"))
    llm_model: str = Field(default="gpt-4o-mini", description="Model name sent to the OpenAI-compatible endpoint.")
    llm_api_key: SecretStr | None = Field(default=None, description="API key; falls back to OPENAI_API_KEY.")
    llm_timeout: float = Field(default=30.0, gt=0, description="Seconds before an LLM request times out.")
    llm_max_retries: int = Field(default=2, ge=0, le=10, description="Retries on connection errors, 429 and 5xx.")
    llm_max_tokens: int = Field(default=300, ge=16, description="Max tokens an LLM may generate.")
    llm_max_chars: int = Field(
        default=20_000, ge=100, description="Characters of an LLM reply read before it is cut (enforced by us)."
    )
    local_model: str | None = Field(
        default=None, description="The local answerer's model: a GGUF file (e.g. one Ollama or LM Studio downloaded) "
        "or a model the local extra installs: qwen2.5-coder-1.5b, qwen2.5-coder-0.5b, smollm2-135m.",
        json_schema_extra=_shown("qwen2.5-coder-1.5b when installed, else smollm2-135m"))
    local_threads: int | None = Field(default=None, description="llama.cpp threads.",
                                      json_schema_extra=_shown("all cores"))
    local_ctx: int = Field(default=2048, ge=256, description="llama.cpp context length.")


class ServerSettings(BaseModel):
    """Server: the chat app's address, login, queue and request limits."""

    host: str = Field(default="127.0.0.1", description="Chat server host.")
    port: int = Field(default=7860, ge=0, le=65535, description="Chat server port.")
    auth: str | None = Field(default=None, description="Chat login as 'user:password' (several comma-separated).")
    share: bool = Field(default=False, description="Create a public Gradio share link (off by default).")
    queue_size: int = Field(default=64, ge=1, description="Max queued chat requests before 'busy' (and answers in "
                                                          "progress or waiting for their answer slot at once).")
    concurrency: int = Field(default=4, ge=1, description="Extractive answers computed at once, across every event "
                                                          "and API of the chat server.")
    llm_concurrency: int = Field(default=4, ge=1, description="LLM answers in progress at once, across every event "
                                                              "and API (slots of their own: an extractive answer never "
                                                              "waits behind an LLM one).")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Largest HTTP request body accepted (bytes; "
                                                                        "413 beyond, chunked bodies too).")
    max_upload_bytes: int = Field(default=50_000_000, ge=1024, description="Largest upload of paper files from "
                                                                           "the web chat (bytes, all files at once).")
    max_upload_files: int = Field(default=20, ge=1, description="Most paper files added in one upload.")
    upload_concurrency: int = Field(default=2, ge=1, description="Uploads one client may send at once (429 beyond).")
    upload_client_bytes: int = Field(default=200_000_000, ge=1024, description="Bytes one client may upload in an "
                                                                               "hour (429 beyond).")
    max_history_turns: int = Field(default=20, ge=0, description="Most history messages accepted by the /ask API.")
    max_history_chars: int = Field(default=8000, ge=100, description="Longest history message accepted.")
    max_history_total_chars: int = Field(default=40_000, ge=100, description="Most history characters in all.")
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed to call the chat from a browser (none by default)."
    )
    api_keys: SecretStr | None = Field(
        default=None, description="Comma-separated keys for the /v1 (OpenAI-compatible) and /api routes and "
                                  "`paperchat mcp --http` (Authorization: Bearer KEY); when set, requests without one "
                                  "get 401 (the chat login does not replace a key).",
    )
    mcp_port: int = Field(default=7861, ge=0, le=65535, description="Port of `paperchat mcp --http`.")
    allowed_hosts: str = Field(
        default="", description="Comma-separated host names the server answers to besides IP addresses and localhost "
                                "('.example.org' takes its subdomains too, '*' any name); a request naming another "
                                "host gets 400, which stops DNS rebinding. Set the name users reach it by behind a "
                                "proxy.",
    )
    trusted_proxies: str = Field(
        default="", description="Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For names "
                                "the client (for the login back-off and upload limits); none by default: the client "
                                "is the connecting address.",
    )
    login_max_failures: int = Field(default=5, ge=1, description="Wrong passwords per client before back-off.")
    login_backoff: float = Field(
        default=1.0, gt=0, description="Seconds of the first login lock-out; each further wrong password doubles it."
    )


def _default_model_dir() -> Path:
    """Where the models the local extra installs are assembled: the user's cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "paperchat" / "models"


class ReadingSettings(BaseModel):
    """Reading: the local model that reads the retrieved passages where the rules are unsure."""

    reader: Literal["auto", "on", "off"] = Field(
        default="auto", description="'auto' reads with the reading model when it is installed (the local extra) or "
        "RAG_READER_MODEL names a GGUF file; 'on' fails without one; 'off' leaves every decision to the rules.")
    reader_model: str = Field(
        default="qwen2.5-coder-1.5b", description="The reading model: a GGUF file, or a model the local extra "
        "installs (qwen2.5-coder-1.5b, qwen2.5-coder-0.5b).")
    reader_budget: float = Field(default=5.0, gt=0, le=600, description="Seconds of reading per question; what is "
                                 "not read by then is decided by the rules.")
    reader_threads: int | None = Field(default=None, ge=1, description="llama.cpp threads of the reading model.",
                                       json_schema_extra=_shown("all cores"))
    model_dir: Path = Field(default_factory=_default_model_dir, description="Where models the local extra installs "
                            "are assembled from their packages (once, checksum verified).",
                            json_schema_extra=_shown("~/.cache/paperchat/models"))


GROUPS: tuple[type[BaseModel], ...] = (StoreSettings, RetrievalSettings, AnswerSettings, ReadingSettings, LLMSettings,
                                       ServerSettings)


# The groups are mixins, so every field keeps its flat name (settings.top_k) and its flat variable (RAG_TOP_K).
class Settings(ServerSettings, LLMSettings, ReadingSettings, AnswerSettings, RetrievalSettings, StoreSettings,
               BaseSettings):
    """Every setting of paperchat, in six groups; each can be set as an environment variable with the RAG_ prefix."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    def group(self, cls: type[G]) -> G:
        """One group's values as its own model (settings.group(RetrievalSettings).top_k)."""
        return cls.model_validate({name: getattr(self, name) for name in cls.model_fields})


def _default_text(field: FieldInfo) -> str:
    """A field's default as the README table shows it."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])
    if field.default is None or field.default == "":
        return "unset"
    return str(field.default).lower() if isinstance(field.default, bool) else str(field.default)


def markdown_table() -> str:
    """The README's settings section body: one table per group, generated from the model so it cannot drift."""
    lines: list[str] = []
    for cls in GROUPS:
        title, _, blurb = (cls.__doc__ or "").partition(":")
        lines += [f"**{title.strip()}**: {blurb.strip()}", "", "| setting | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(f"| `RAG_{name.upper()}` | `{_default_text(field)}` | {meaning} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# What a value must be, by pydantic error type: the end of a plain sentence such as "RAG_PORT must be a whole number".
_MUST = {"int_parsing": "must be a whole number", "int_type": "must be a whole number",
         "int_from_float": "must be a whole number", "float_parsing": "must be a number", "float_type": "must be a number",
         "bool_parsing": "must be true or false", "bool_type": "must be true or false",
         "greater_than_equal": "must be at least {ge}", "less_than_equal": "must be at most {le}",
         "greater_than": "must be more than {gt}", "less_than": "must be less than {lt}",
         "literal_error": "must be one of {expected}", "enum": "must be one of {expected}"}


def plain_error(name: str, err: Mapping[str, Any]) -> str:
    """One pydantic error as one plain sentence about what the user set: 'RAG_PORT must be a whole number, not
    'abc'.' (name: the variable or option the value came from)."""
    must = _MUST.get(str(err.get("type")))
    if must is None:
        message = str(err.get("msg", "is not valid")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return f"{name}: {message.rstrip('.')}."
    ctx = {k: str(v).replace("'", "") for k, v in (err.get("ctx") or {}).items()}  # one of a, b or c
    return f"{name} {must.format(**ctx)}, not {err.get('input')!r}."


class SettingsError(ValueError):
    """A setting with a value it cannot take, said in one sentence naming the variable (or the option it came from)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def load_settings(options: Mapping[str, tuple[str, object]] | None = None) -> Settings:
    """Settings from the environment and the command line: options maps a field to (option name, value), a value of
    None leaving the field to the environment. SettingsError names the option or the RAG_ variable at fault."""
    given = {field: value for field, (_, value) in (options or {}).items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        name = (options or {})[field][0] if field in given else f"RAG_{field.upper()}"
        raise SettingsError(plain_error(name, err), name) from None


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides applied."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
