"""paperchat as LangChain components: LangChain's own standard suites (langchain-tests) against the real MiniLM model
and real Chroma indexes of the bundled corpus (embedded and server), langchain_chroma.Chroma over paperchat's
collection, the answer chain as a Runnable, and the README's example.

Suites run: RetrieversIntegrationTests (embedded index, and a Chroma server's), EmbeddingsIntegrationTests (MiniLM,
and the OpenAI adapter against a local endpoint), EmbeddingsUnitTests (MiniLM). Every test in them applies and runs,
sync and async, except one, which runs but checks nothing (langchain-tests does so when no environment is declared):
- EmbeddingsUnitTests.test_init_from_env: PaperchatEmbeddings reads no environment variable; paperchat's settings
  (RAG_EMBEDDINGS, RAG_LOCAL_THREADS) are read by Settings, and create_embeddings(settings) picks the model.
No other LangChain interface (chat model, vector store, tool) is implemented by paperchat: its chat models are
langchain-openai's own classes, and its store is Chroma used directly (langchain_chroma.Chroma reads it, below).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import numpy as np
import pytest
from conftest import pipeline_on_server
from fault_server import EMBEDDING_DIM
from langchain_chroma import Chroma
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from rag.answer import Pipeline
from rag.embeddings import OpenAIEmbeddingsAdapter
from rag.langchain import (
    Answer,
    PaperchatEmbeddings,
    PaperchatRetriever,
    Question,
    chroma_client,
    create_embeddings,
    create_retriever,
)
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVER_COLLECTION = "langchain"  # its own collection on the session server: other tests' writes cannot interfere
QUERIES = ["What is 2BP?", "How much faster is Seesaw than vLLM?", "memory efficient training of mixture of experts"]
STEPS = ["request", "analyse", "retrieve", "decide", "compose", "verify"]


@pytest.fixture(scope="module")
def server_pipe(chroma_server: str, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The real pipeline over the session Chroma server, its index built from the bundled corpus."""
    return pipeline_on_server(chroma_server, SERVER_COLLECTION, tmp_path_factory.mktemp("langchain-server-client"))


class TestPaperchatRetriever(RetrieversIntegrationTests):
    """The hybrid retriever over the embedded index of the bundled corpus."""

    @pytest.fixture(autouse=True)
    def _pipeline(self, pipeline: Pipeline) -> None:
        self.pipe = pipeline

    @property
    def retriever_constructor(self) -> type[PaperchatRetriever]:
        return PaperchatRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.pipe.index, "settings": self.pipe.settings}

    @property
    def retriever_query_example(self) -> str:
        return "How is pipeline parallelism made more efficient?"


@pytest.mark.slow
class TestPaperchatRetrieverOnServer(TestPaperchatRetriever):
    """The same suite over a Chroma server's index."""

    @pytest.fixture(autouse=True)
    def _pipeline(self, server_pipe: Pipeline) -> None:  # type: ignore[override]
        self.pipe = server_pipe


class TestPaperchatEmbeddings(EmbeddingsIntegrationTests):
    """The real all-MiniLM-L6-v2 ONNX model."""

    @property
    def embeddings_class(self) -> type[PaperchatEmbeddings]:
        return PaperchatEmbeddings


class TestPaperchatEmbeddingsUnit(EmbeddingsUnitTests):
    """Construction (free: the model loads on first use)."""

    @property
    def embeddings_class(self) -> type[PaperchatEmbeddings]:
        return PaperchatEmbeddings


@pytest.fixture
def embeddings_endpoint(fault_llm: Any) -> Settings:
    """Settings for the OpenAI adapter against the local endpoint."""
    return Settings(llm_base_url=fault_llm.url, llm_api_key="test-key", llm_max_retries=0)


class TestOpenAIEmbeddingsAdapter(EmbeddingsIntegrationTests):
    """The OpenAI adapter (RAG_EMBEDDINGS=openai:<model>) against a local endpoint."""

    @pytest.fixture(autouse=True)
    def _endpoint(self, embeddings_endpoint: Settings) -> None:
        self.settings = embeddings_endpoint

    @property
    def embeddings_class(self) -> type[OpenAIEmbeddingsAdapter]:
        return OpenAIEmbeddingsAdapter

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "text-embedding-3-small", "settings": self.settings}


async def test_openai_adapter_async_calls_the_api_and_normalises(embeddings_endpoint: Settings, fault_llm: Any) -> None:
    emb = OpenAIEmbeddingsAdapter("text-embedding-3-small", embeddings_endpoint)
    got = np.array(await emb.aembed_documents(["What is 2BP?", "pipeline parallelism"]))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(got, emb.embed_documents(["What is 2BP?", "pipeline parallelism"]), atol=1e-6)
    assert len(await emb.aembed_query("What is 2BP?")) == EMBEDDING_DIM == emb.dim
    assert [r.path for r in fault_llm.requests] == ["/v1/embeddings"] * 3
    assert fault_llm.requests[0].body["model"] == "text-embedding-3-small"
    # texts go out as strings (servers other than OpenAI's refuse langchain-openai's tiktoken id arrays)
    assert fault_llm.requests[0].body["input"] == ["What is 2BP?", "pipeline parallelism"]
    assert fault_llm.requests[0].body["encoding_format"] == "float"


@pytest.mark.parametrize("k", [1, 2, 5])
def test_call_time_k_wins_over_the_field(pipeline: Pipeline, k: int) -> None:
    retriever = create_retriever(pipeline, k=4)
    assert len(retriever.invoke("What is 2BP?", k=k)) == k
    assert len(retriever.invoke("What is 2BP?")) == 4


def test_k_caps_even_when_the_question_names_more_papers(pipeline: Pipeline) -> None:
    # search() gives every named paper a place beyond k for the answer stages; through LangChain k is a hard limit
    query = "Compare Seesaw, 2BP and Hecate"
    assert len(create_retriever(pipeline).search(query, k=1)) == 3
    docs = create_retriever(pipeline).invoke(query, k=1)
    assert len(docs) == 1 and docs[0].metadata["paper_id"] in {"seesaw", "2bp", "hecate"}


async def test_call_time_paper_filter_sync_and_async(pipeline: Pipeline) -> None:
    retriever = create_retriever(pipeline)
    unfiltered = retriever.invoke("memory efficient training")
    others = sorted({d.metadata["paper_id"] for d in unfiltered} - {"2bp"})[:1]
    docs = retriever.invoke("memory efficient training", paper_ids=others)
    assert docs and {d.metadata["paper_id"] for d in docs} == set(others)
    adocs = await retriever.ainvoke("memory efficient training", paper_ids=others, k=2)
    assert [d.id for d in adocs] == [d.id for d in docs[:2]]


async def test_async_path_matches_sync(pipeline: Pipeline) -> None:
    retriever = create_retriever(pipeline)
    for query in QUERIES:
        sync = retriever.invoke(query, k=3)
        got = await retriever.ainvoke(query, k=3)
        assert [d.id for d in got] == [d.id for d in sync] and len(got) == 3
    batched = await retriever.abatch(QUERIES, k=2)  # type: ignore[call-arg]
    assert [[d.id for d in docs] for docs in batched] == [[d.id for d in retriever.invoke(q, k=2)] for q in QUERIES]


async def test_embeddings_async_equal_sync(pipeline: Pipeline) -> None:
    emb = create_embeddings(pipeline.settings)
    assert isinstance(emb, PaperchatEmbeddings)
    texts = ["What is 2BP?", "pipeline parallelism", "a much longer text about mixture of experts training on GPUs"]
    np.testing.assert_allclose(await emb.aembed_documents(texts), emb.embed_documents(texts), atol=1e-6)
    np.testing.assert_allclose(await emb.aembed_query(texts[0]), emb.embed_query(texts[0]), atol=1e-6)


def _dense_ids(pipe: Pipeline, query: str, k: int) -> list[str]:
    """paperchat's dense search, uncapped: the k nearest passages by the index's embeddings."""
    retriever = create_retriever(pipe, k=k, mode="dense")
    retriever.per_paper_cap = k
    return [d.id for d in retriever.invoke(query)]  # type: ignore[misc]


def _user_chroma(pipe: Pipeline, client: Any = None) -> Chroma:
    """A LangChain user's own vector store over paperchat's passage collection."""
    return Chroma(collection_name=pipe.settings.collection, embedding_function=create_embeddings(pipe.settings),
                  client=client or chroma_client(pipe.settings))


def _same_passages(pipe: Pipeline, store: Chroma) -> None:
    for query in QUERIES:
        found = store.similarity_search_with_score(query, k=5)
        assert [d.id for d, _ in found] == _dense_ids(pipe, query, 5), query
        ours = {d.id: d.metadata["similarity"] for d in create_retriever(pipe, k=5, mode="dense").invoke(query)}
        for doc, distance in found:  # cosine distance in Chroma, cosine similarity in paperchat
            assert doc.metadata["paper_id"] and doc.page_content
            if doc.id in ours:
                assert 1 - distance == pytest.approx(ours[doc.id], abs=1e-3)


def test_langchain_chroma_over_the_embedded_index(pipeline: Pipeline) -> None:
    _same_passages(pipeline, _user_chroma(pipeline))


USER_SCRIPT = """
import json, sys
from langchain_chroma import Chroma
from rag.langchain import PaperchatEmbeddings
store = Chroma(collection_name="paperchat", embedding_function=PaperchatEmbeddings(), persist_directory=sys.argv[1])
print(json.dumps([[d.id for d in store.similarity_search(q, k=5)] for q in sys.argv[2:]]))
"""


def test_langchain_chroma_on_the_index_directory_in_another_process(pipeline: Pipeline) -> None:
    # a user's own program, knowing only the directory: Chroma's default client settings, paperchat's embeddings
    out = subprocess.run([sys.executable, "-c", USER_SCRIPT, str(Path(pipeline.settings.data_dir) / "chroma"),
                          *QUERIES], capture_output=True, text=True, timeout=300, cwd=ROOT, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == [_dense_ids(pipeline, q, 5) for q in QUERIES]


@pytest.mark.slow
def test_langchain_chroma_over_the_server_index(server_pipe: Pipeline) -> None:
    url = urlparse(server_pipe.settings.chroma_url)
    _same_passages(server_pipe, _user_chroma(server_pipe, chromadb.HttpClient(host=url.hostname, port=url.port)))


def test_langchain_chroma_as_retriever_in_a_chain(pipeline: Pipeline) -> None:
    store = _user_chroma(pipeline)
    chain = store.as_retriever(search_kwargs={"k": 3}) | RunnableLambda(lambda docs: [d.id for d in docs])
    assert chain.invoke("What is 2BP?") == _dense_ids(pipeline, "What is 2BP?", 3)


class _Runs(BaseCallbackHandler):
    """The names of the chain runs a callback sees."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        self.names.append(kwargs.get("name") or "")


def test_runnable_answers_like_the_pipeline(pipeline: Pipeline) -> None:
    chain = pipeline.runnable()
    ans = chain.invoke({"question": "What is 2BP?", "history": []})
    want = pipeline.answer("What is 2BP?")
    assert isinstance(ans, Answer) and not ans.abstained
    assert ans.answer == want.answer and [s.chunk_id for s in ans.sources] == [s.chunk_id for s in want.sources]
    assert chain.invoke("What is 2BP?").answer == want.answer
    assert len(chain.invoke(Question(question="What is 2BP?", k=2)).sources) == 2
    assert chain.get_input_schema().model_json_schema()["title"] == "Question"
    assert chain.get_output_schema().model_json_schema()["title"] == "Answer"


def test_runnable_takes_langchain_messages_as_history(pipeline: Pipeline) -> None:
    history = [HumanMessage("What is Hecate?"),
               AIMessage("Hecate is an MoE training system [1]; MoEShard and PaRO differ [2].")]
    ans = pipeline.runnable().invoke({"question": "how much faster is it?", "history": history})
    assert ans.standalone_question == "How much faster is Hecate?"
    assert "3.54x" in ans.answer


def test_runnable_composes_with_pipe_config_and_batch(pipeline: Pipeline) -> None:
    runs = _Runs()
    chain = (pipeline.runnable() | RunnableLambda(lambda a: a.answer)).with_config(
        run_name="ask", callbacks=[runs], tags=["user-app"])
    text = chain.invoke({"question": "How much faster is Seesaw than vLLM?"})
    assert isinstance(text, str) and text == pipeline.answer("How much faster is Seesaw than vLLM?").answer
    assert runs.names[0] == "ask" and "paperchat" in runs.names
    assert [n for n in runs.names if n in STEPS] == STEPS
    questions = ["What is 2BP?", {"question": "What is Hecate?"}, {"question": "What is 2BP?", "paper_ids": ["hecate"]}]
    answers = pipeline.runnable().batch(questions)  # type: ignore[arg-type]
    assert [a.question for a in answers] == ["What is 2BP?", "What is Hecate?", "What is 2BP?"]
    assert {s.paper_id for s in answers[2].sources} == {"hecate"}
    assert answers[1].answer == pipeline.answer("What is Hecate?").answer


async def test_runnable_astream_events_names_every_step(pipeline: Pipeline) -> None:
    chain = pipeline.runnable()
    events = [e async for e in chain.astream_events({"question": "What is 2BP?"}, version="v2")]
    started = [e["name"] for e in events if e["event"] == "on_chain_start"]
    assert started[0] == "paperchat" and [n for n in started if n in STEPS] == STEPS
    end = events[-1]
    assert end["event"] == "on_chain_end" and end["name"] == "paperchat"
    assert isinstance(end["data"]["output"], Answer)
    assert end["data"]["output"].answer == pipeline.answer("What is 2BP?").answer
    assert (await chain.ainvoke("What is 2BP?")).answer == end["data"]["output"].answer


def test_readme_example_runs(index_dir: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using paperchat from LangChain", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(code) == 1, "the section holds one runnable python example"
    monkeypatch.setenv("RAG_DATA_DIR", str(index_dir))
    namespace: dict[str, Any] = {}
    exec(compile(code[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "2bp" in out and "[1]" in out, out
    assert "3.54x" in out, out  # the follow-up, its history as LangChain messages, was answered about Hecate
