"""The Dockerfile frontend: text → nodes → typed instructions → stage plan (pure, no I/O).

The build engine calls ``parse_dockerfile(text, build_args, target)``, then for each stage
``stage.resolve(base_env, triggers)`` for its steps, and, for the context,
``DockerignoreMatcher.from_text(text).ignored(path)``.  See docs/architecture.md.
"""

from .dockerignore import DockerignoreMatcher
from .errors import DockerfileError
from .expand import Step
from .instructions import Instruction, parse_trigger
from .lex import expand_word, expand_words
from .plan import BuildPlan, Stage, parse_dockerfile

__all__ = [
    "BuildPlan", "DockerfileError", "DockerignoreMatcher", "Instruction", "Stage", "Step",
    "expand_word", "expand_words", "parse_dockerfile", "parse_trigger",
]
