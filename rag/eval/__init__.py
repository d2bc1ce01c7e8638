"""The evaluation harness: run a question set through any answer function and score it without a model.

`questions` (the question-set schema), `metrics` (rates with Wilson intervals, retrieval and fact metrics),
`score` (one answer: facts, citations, support, failure tag), `run` (answer every question, aggregate),
`report` (results.jsonl, summary.json and the rendered reports of `render`), `gates` (CI thresholds).
Metrics follow /work/shared/notes/evaluation.md.
"""
