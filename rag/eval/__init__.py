"""The evaluation harness: run a question set through any answer function and score it without a model.

`questions` (the question-set schema), `metrics` (rates with Wilson intervals, retrieval and fact metrics),
`score` (one answer: facts, citations, support, failure tag), `run` (answer every question, aggregate),
`report` (results.jsonl, summary.json and the rendered reports of `render`), `gates` (CI thresholds);
for the app: `session` (one run at a time with progress, written under the data dir), `compare` (two runs side by
side), `library` (the library's own questions, drafts and chat feedback), `facts` (key facts as people write them,
suggested from an answer), `drafts` (draft questions from abstracts).
Metrics follow /work/shared/notes/evaluation.md.
"""
