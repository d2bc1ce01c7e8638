"""The answer engine, one module per stage: analyse -> retrieve -> decide -> compose / generate -> verify.

    from rag.answer import Pipeline
    Pipeline().answer("What is 2BP?")
"""

from rag.answer.generate import sanitize
from rag.answer.models import ABSTAIN_SENTENCE, ANSWERERS, Question, Turn
from rag.answer.pipeline import Pipeline
from rag.answer.request import QuestionError, validate_question

__all__ = ["ABSTAIN_SENTENCE", "ANSWERERS", "Pipeline", "Question", "QuestionError", "Turn", "sanitize",
           "validate_question"]
