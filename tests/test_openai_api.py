"""The OpenAI-compatible endpoint and the REST routes on the served chat app, through real clients: the official
`openai` SDK (plain and streamed completions, history, abstention, keys) and httpx for /api and the OpenAPI page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import openai
import pytest
from conftest import serve_app
from pydantic import SecretStr

from rag.answer import ABSTAIN_SENTENCE, Pipeline

pytestmark = pytest.mark.slow
KEY = "test-key-1"
CITE = re.compile(r"\[(\d+)\]")
CLI_KEYS = {"question", "standalone_question", "answer", "abstained", "answerer", "sources", "sentences",
            "timings_ms", "grounded", "notice", "evidence", "closest_papers"}


@pytest.fixture(scope="module")
def base(pipeline: Pipeline) -> Iterator[str]:
    """The chat app over the session pipeline with API keys set; its base URL."""
    settings = pipeline.settings.model_copy(update={"api_keys": SecretStr(f"other-key, {KEY}")})
    with serve_app(pipeline, settings) as url:
        yield url


@pytest.fixture(scope="module")
def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=120)


def paperchat(obj: object) -> dict:
    """The documented extra field of a completion or chunk."""
    extra = obj.model_extra or {}  # type: ignore[attr-defined]
    assert "paperchat" in extra, extra
    return extra["paperchat"]


def check_cited(text: str, extra: dict) -> None:
    """Every [n] in the text points at a source; every source is a real passage of its paper."""
    numbers = {int(n) for n in CITE.findall(text)}
    assert numbers, text
    by_n = {s["n"]: s for s in extra["sources"]}
    assert numbers <= set(by_n), (numbers, list(by_n))
    for sentence in extra["sentences"]:
        assert set(sentence["citations"]) <= set(by_n)
    for n in numbers:
        assert f"- [{n}] *{by_n[n]['title']}* (`{by_n[n]['paper_id']}`)" in text  # the references list


def test_models(client: openai.OpenAI) -> None:
    # paperchat:openai only when an LLM is configured (none here: it would call the public OpenAI host)
    assert [m.id for m in client.models.list()] == ["paperchat", "paperchat:extractive", "paperchat:local"]
    assert client.models.retrieve("paperchat:extractive").id == "paperchat:extractive"


def test_completion_keeps_citations_and_sources(client: openai.OpenAI, pipeline: Pipeline) -> None:
    reply = client.chat.completions.create(model="paperchat", messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "By how much does Seesaw beat vLLM?"}])
    text = reply.choices[0].message.content or ""
    extra = paperchat(reply)
    assert reply.choices[0].finish_reason == "stop" and reply.model == "paperchat"
    assert "1.78x" in text and text.startswith(extra["answer"]) and "**References**" in text
    check_cited(text, extra)
    assert set(extra) == CLI_KEYS and not extra["abstained"]
    abstracts = {p.id: p.abstract for p in pipeline.papers()}
    assert all(s["text"] in abstracts[s["paper_id"]] for s in extra["sources"])
    assert pipeline.answer("By how much does Seesaw beat vLLM?").answer == extra["answer"]


def test_streamed_completion_matches_the_plain_one(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "What is 2BP?"}]
    plain = client.chat.completions.create(model="paperchat:extractive", messages=messages)
    parts, chunks = [], list(client.chat.completions.create(model="paperchat:extractive", messages=messages,
                                                            stream=True))
    for chunk in chunks:
        parts.extend(c.delta.content or "" for c in chunk.choices)
    assert len(chunks) >= 3 and chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(parts)
    assert text == plain.choices[0].message.content
    extra = paperchat(chunks[-1])
    check_cited(text, extra)
    assert extra["sources"] == paperchat(plain)["sources"]


def test_follow_up_uses_the_history(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="paperchat", messages=[{"role": "user", "content": "What is 2BP?"}])
    follow = client.chat.completions.create(model="paperchat", messages=[
        {"role": "user", "content": "What is 2BP?"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": [{"type": "text", "text": "What throughput increase does it achieve?"}]}])
    extra = paperchat(follow)
    assert "2BP" in extra["standalone_question"]
    assert "1.70x" in (follow.choices[0].message.content or "")
    check_cited(follow.choices[0].message.content or "", extra)


def test_out_of_corpus_question_abstains(client: openai.OpenAI) -> None:
    for stream in (False, True):
        reply = client.chat.completions.create(model="paperchat", stream=stream, messages=[
            {"role": "user", "content": "What is the capital of France?"}])
        if stream:
            chunks = list(reply)
            text, extra = "".join(c.choices[0].delta.content or "" for c in chunks), paperchat(chunks[-1])
        else:
            text, extra = reply.choices[0].message.content or "", paperchat(reply)
        assert text.startswith(ABSTAIN_SENTENCE) and extra["abstained"]
        assert "**References**" not in text and extra["notice"] in text


def test_paper_filter_extra_field(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="paperchat", extra_body={"paper_ids": ["seesaw"]},
                                           messages=[{"role": "user", "content": "What is the throughput gain?"}])
    assert {s["paper_id"] for s in paperchat(reply)["sources"]} == {"seesaw"}
    with pytest.raises(openai.NotFoundError, match="Unknown paper id"):
        client.chat.completions.create(model="paperchat", extra_body={"paper_ids": ["nope"]},
                                       messages=[{"role": "user", "content": "What is it?"}])


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"model": "gpt-4o"}, openai.NotFoundError, "The model 'gpt-4o' does not exist"),
    ({"messages": [{"role": "user", "content": "   "}]}, openai.BadRequestError, "Please type a question"),
    ({"messages": [{"role": "user", "content": "x" * 5000}]}, openai.BadRequestError, "the limit is 2,000"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
     openai.BadRequestError, "The last message must be the user's question"),
    ({"messages": []}, openai.BadRequestError, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     openai.BadRequestError, "Only text content"),
])
def test_bad_requests_get_clear_errors(client: openai.OpenAI, kwargs: dict, error: type, message: str) -> None:
    args = {"model": "paperchat", "messages": [{"role": "user", "content": "What is 2BP?"}], **kwargs}
    with pytest.raises(error, match=re.escape(message)) as info:
        client.chat.completions.create(**args)
    assert "Traceback" not in str(info.value)


def test_keys_are_required(base: str) -> None:
    for key in ("wrong", ""):
        with pytest.raises(openai.AuthenticationError, match="API key"):
            openai.OpenAI(base_url=f"{base}/v1", api_key=key or "x", max_retries=0).models.list()
    for path in ("/v1/models", "/api/papers"):
        response = httpx.get(base + path)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(base + "/api/papers", headers={"authorization": "Bearer other-key"}).status_code == 200
    # Keys without RAG_AUTH: the chat's page asks for a key too (issue 25, row 9), on paperchat's own login page.
    page = httpx.get(base + "/")
    assert page.status_code == 303 and page.headers["location"] == "login"
    login = httpx.get(base + "/login")
    assert login.status_code == 200 and "API key" in login.text and "<title>Log in · paperchat</title>" in login.text


def test_bodies_past_the_limit_and_broken_json(base: str) -> None:
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    big = json.dumps({"model": "paperchat", "messages": [{"role": "user", "content": "x" * 2_000_000}]})
    response = httpx.post(f"{base}/v1/chat/completions", content=big, headers=headers)
    assert response.status_code == 413 and "too large" in response.json()["error"]["message"]
    response = httpx.post(f"{base}/v1/chat/completions", content=b"{not json", headers=headers)
    assert response.status_code == 400 and response.json()["error"]["message"] == "The request body is not valid JSON."


# -- the REST routes ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rest(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {KEY}"}, timeout=120) as http:
        yield http


def test_rest_papers_search_ask(rest: httpx.Client, pipeline: Pipeline) -> None:
    papers = rest.get("/api/papers").json()
    assert [p["id"] for p in papers] == [p.id for p in pipeline.papers()] and set(papers[0]) == {"id", "title",
                                                                                                 "aliases"}
    seesaw = rest.get("/api/papers/seesaw").json()
    assert seesaw["abstract"].startswith("To improve the efficiency")
    hits = rest.post("/api/search", json={"query": "2-stage backpropagation", "k": 3}).json()
    assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["paper_id"] == "2bp"
    answer = rest.post("/api/ask", json={"question": "What throughput increase does it achieve?",
                                         "history": [{"role": "user", "content": "What is 2BP?"}]}).json()
    assert set(answer) == CLI_KEYS and "1.70x" in answer["answer"]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("post", "/api/ask", {"question": ""}, 400, "Please type a question."),
    ("post", "/api/ask", {"question": "What?", "history": [{"role": "user", "content": "x"}] * 21}, 400,
     "history has 21 messages"),
    ("post", "/api/ask", {"question": "What is it?", "paper_ids": ["nope"]}, 404, "Unknown paper id(s): nope"),
    ("get", "/api/papers/nope", None, 404, "Unknown paper id(s): nope"),
    ("post", "/api/search", {"query": "x", "retrieval": "magic"}, 400, "Unknown retrieval mode"),
])
def test_rest_errors(rest: httpx.Client, method: str, path: str, body: dict | None, status: int,
                     message: str) -> None:
    response = rest.request(method, path, json=body)
    assert response.status_code == status and message in response.json()["detail"]


def test_rest_validation_and_openapi_page(rest: httpx.Client) -> None:
    assert rest.post("/api/search", json={"query": "x", "k": 500}).status_code == 422
    schema = rest.get("/api/openapi.json").json()
    assert {"/api/papers", "/api/search", "/api/ask", "/v1/models", "/v1/chat/completions"} <= set(schema["paths"])
    assert all(p.startswith(("/api/", "/v1/")) for p in schema["paths"])  # Gradio's own routes stay out
    assert "ChatMessage" in schema["components"]["schemas"]
    page = rest.get("/api/docs")  # keys without a login: the docs want the key too (as a bearer or at the login)
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert httpx.get(str(rest.base_url) + "/api/docs").status_code == 401


def test_login_without_keys_guards_the_routes(pipeline: Pipeline) -> None:
    with serve_app(pipeline, pipeline.settings, auth="ada:secret-pass") as url:
        response = httpx.get(url + "/v1/models")
        assert response.status_code == 401 and "log in" in response.json()["error"]["message"]
        with httpx.Client(base_url=url) as browser:
            assert browser.post("/login", data={"username": "ada", "password": "secret-pass"}).status_code == 200
            assert browser.get("/v1/models").status_code == 200  # the session opens them when no keys are set


def test_login_and_keys(pipeline: Pipeline) -> None:
    settings = pipeline.settings.model_copy(update={"api_keys": SecretStr(KEY)})
    with serve_app(pipeline, settings, auth="ada:secret-pass") as url:
        assert httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
        with httpx.Client(base_url=url) as browser:
            assert browser.post("/login", data={"username": "ada", "password": "secret-pass"}).status_code == 200
            assert browser.get("/v1/models").status_code == 401  # the login does not replace a key
            assert browser.get("/api/docs").status_code == 200
        assert httpx.get(url + "/api/docs").status_code == 401


# -- issue 27, item 12: references quote the cited sentence, usage, LangChain, page null ------------------------
REFERENCE = re.compile(r"^- \[(\d+)\] \*(.+?)\* \(`([^`]+)`(?:, (pp?\. [\d–]+))?\): “(.+)”$")


def reference_lines(text: str) -> dict[int, str]:
    """The quote of each line of the References list, by number."""
    lines = text.split("**References**", 1)[1].strip().splitlines()
    found = {int(m[1]): m[5] for m in map(REFERENCE.match, lines) if m}
    assert len(found) == len(lines), lines
    return found


def test_references_quote_the_cited_sentence(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="paperchat", messages=[
        {"role": "user", "content": "By how much does Seesaw beat vLLM?"}])
    text, extra = reply.choices[0].message.content or "", paperchat(reply)
    quotes = reference_lines(text)
    by_n = {s["n"]: s for s in extra["sources"]}
    figure = next(s for s in extra["sentences"] if "1.78x" in s["text"])
    for n in figure["citations"]:  # the source the 1.78x claim cites is quoted for it, not for its first words
        assert "1.78x" in quotes[n], quotes[n]
        assert not quotes[n].startswith("To mitigate re-sharding overhead")
    for n, quote in quotes.items():
        assert quote in " ".join(by_n[n]["text"].split()) and len(quote) < len(by_n[n]["text"])


def test_usage_counts_tokens(client: openai.OpenAI) -> None:
    from rag.text import count_tokens

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2BP?"}]
    reply = client.chat.completions.create(model="paperchat", messages=messages)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == count_tokens("Be brief.") + count_tokens("What is 2BP?")
    assert reply.usage.completion_tokens == count_tokens(reply.choices[0].message.content or "")
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    chunks = list(client.chat.completions.create(model="paperchat", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage == reply.usage  # OpenAI's usage chunk, last
    assert chunks[-2].choices[0].finish_reason == "stop" and paperchat(chunks[-2])["sources"]
    plain = list(client.chat.completions.create(model="paperchat", messages=messages, stream=True))
    assert plain[-1].choices[0].finish_reason == "stop" and plain[-1].usage is None  # not asked for: not sent


def test_non_pdf_passages_have_no_page(client: openai.OpenAI, rest: httpx.Client) -> None:
    extra = paperchat(client.chat.completions.create(model="paperchat", messages=[
        {"role": "user", "content": "What is 2BP?"}]))
    assert extra["sources"] and all(s["page"] is None and s["page_end"] is None for s in extra["sources"])
    hits = rest.post("/api/search", json={"query": "2-stage backpropagation", "k": 3}).json()
    assert all(h["page"] is None and h["page_end"] is None for h in hits)
    answer = rest.post("/api/ask", json={"question": "What is 2BP?"}).json()
    assert all(s["page"] is None for s in answer["sources"])


def test_langchain_chat_openai_gets_text_usage_and_paperchat_the_sources(base: str, client: openai.OpenAI) -> None:
    """ChatOpenAI keeps OpenAI's own fields only (the references are in the text, the usage in usage_metadata);
    rag.langchain.ChatPaperchat adds the `paperchat` field to response_metadata, invoked and streamed."""
    from langchain_openai import ChatOpenAI

    from rag.langchain import ChatPaperchat

    question = "By how much does Seesaw beat vLLM?"
    sdk = paperchat(client.chat.completions.create(model="paperchat", messages=[{"role": "user", "content": question}]))
    plain = ChatOpenAI(model="paperchat", base_url=f"{base}/v1", api_key=KEY, max_retries=0).invoke(question)
    assert "**References**" in plain.content and "1.78x" in plain.content
    assert plain.usage_metadata and plain.usage_metadata["output_tokens"] > 0
    assert "paperchat" not in plain.response_metadata  # dropped by ChatOpenAI, as langchain-openai documents
    chat = ChatPaperchat(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
    got = chat.invoke(question)
    assert got.content == plain.content and got.response_metadata["paperchat"]["sources"] == sdk["sources"]
    streamed = None
    for part in chat.stream(question):
        streamed = part if streamed is None else streamed + part
    assert streamed is not None and streamed.content == got.content
    assert streamed.response_metadata["paperchat"]["sources"] == sdk["sources"]
    assert streamed.usage_metadata and streamed.usage_metadata["output_tokens"] == got.usage_metadata["output_tokens"]


def test_readme_langchain_example_runs(base: str, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import ROOT

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    [code] = [b for b in blocks if "ChatPaperchat(" in b and "ChatOpenAI(" in b]
    namespace: dict = {}
    code = code.replace("http://127.0.0.1:7860", base).replace('"KEY"', repr(KEY))
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert "1.78x" in capsys.readouterr().out and namespace["sources"][0]["paper_id"] == "seesaw"
