"""Who labels the rows the student queries (issue 23): one interface (base.Expert: given rows, class
probabilities and what they cost), with the teacher ensemble, the gold oracle, a local zero-shot language
model (llm.py), an OpenAI-compatible endpoint (endpoint.py) and a person (human.py) behind it.

Only the light parts are imported here; llm.py (torch, transformers) is imported by whoever loads a model."""

from trainables.experts.base import Cost, Expert, ExpertAnswer, OracleExpert, TeacherExpert
from trainables.experts.spec import ExpertSpec, parse_expert

__all__ = ["Cost", "Expert", "ExpertAnswer", "ExpertSpec", "OracleExpert", "TeacherExpert", "parse_expert"]
