"""One model call per image: send its rendered JPEG, parse the answer into a rating.

Runs in the model threads; whatever goes wrong becomes the image's ``reason``, so one bad
answer never ends the run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aimeta.errors import AimetaError
from aimeta.rating.answer import CRITERIA, Rating, json_schema, parse_answer
from aimeta.rating.client import ChatAnswer, ModelClient, ServerUnreachable
from aimeta.rating.render import Rendered


@dataclass
class Outcome:
    """A finished model call (or its failure), handed back to the calling thread."""

    path: str
    client: ModelClient
    rating: Rating | None = None
    answer: ChatAnswer | None = None
    reason: str | None = None
    unreachable: bool = False
    preview: str | None = None


@dataclass(frozen=True)
class Question:
    """What every call asks: the model, the prompts and the limits of the answer."""

    model: str
    system_prompt: str
    user_prompt: str
    temperature: float
    max_tokens: int
    max_keywords: int
    # Where the rendered JPEGs are kept (the web page shows them); None keeps none.
    preview_dir: Path | None = None

    def ask(self, path: str, rendered: Rendered, client: ModelClient) -> Outcome:
        """One chat call about ``path`` and the parsing of its answer (a model thread)."""
        outcome = Outcome(path=path, client=client)
        try:
            if self.preview_dir is not None:
                outcome.preview = self._save_preview(path, rendered)
            answer = client.chat(
                model=self.model,
                system_prompt=self.system_prompt,
                user_prompt=self.user_prompt,
                image_jpeg=rendered.jpeg,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                schema=json_schema(CRITERIA),
            )
            outcome.answer = answer
            outcome.rating = parse_answer(answer.text, max_keywords=self.max_keywords)
        except ServerUnreachable as exc:
            outcome.reason, outcome.unreachable = exc.message, True
        except AimetaError as exc:  # a bad answer (RatingError) or a server's error
            outcome.reason = exc.message
        except Exception as exc:  # keep the run going; the reason says what broke
            outcome.reason = f"unexpected error: {exc!r}"
        return outcome

    def _save_preview(self, path: str, rendered: Rendered) -> str:
        assert self.preview_dir is not None
        folder = Path(self.preview_dir)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (hashlib.sha1(path.encode("utf-8")).hexdigest()[:20] + ".jpg")
        target.write_bytes(rendered.jpeg)
        return str(target)
