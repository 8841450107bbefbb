"""The rating job: render images, ask a vision model, write sidecars, CSV and the database.

Stable API (used by ``aimeta rate`` and the web page)::

    from aimeta.pipelines import rate
    options = rate.RateOptions(folder=Path("photos"), xmp=True, csv=True)
    problems = rate.check_options(settings, options)   # {field: message}, empty when fine
    result = rate.run(settings, options, on_event=callback, stop=threading.Event())

``run`` reports through ``on_event`` (aimeta.events) and returns a :class:`RateResult`:

- ``Log`` lines (which model and server, what is skipped, warnings);
- ``Started("rate", total)`` once the images to rate are known;
- ``Progress("rate", advance=0, item=path)`` when an image is sent to the model, and
  ``Progress("rate", advance=1, item=path)`` when it is finished (rated or failed);
- ``ItemResult("rate", item=path, ok, data)`` per image: ``data`` holds path, overall, scores,
  keywords, model, tokens, duration_s, sidecar, preview (the rendered JPEG when
  ``options.preview_dir`` is set) -- or ``reason`` when ``ok`` is False;
- ``Finished("rate")``.

Setting ``stop`` ends the run cleanly: nothing new is started, calls in flight are given up
to ``STOP_GRACE_S`` to finish, and every output is flushed. Bad images are per-image errors
(recorded in the ``errors`` table with stage ``rate``); a missing model server, a wrong
option or an unwritable CSV raise AimetaError.

Threads: the calling thread renders (through a pool) and hands images to the model threads;
one output thread writes every answer (database, sidecar, CSV, in the order the answers came).
ExifTool is looked up at the start (ExifToolMissing before anything is sent) and started by
the output thread. Events are reported from the calling thread only; an image's
``ItemResult`` comes once its outputs are written, and ``run`` returns once every answer
received is written.

The modules, in the order a run uses them:

- ``options``: RateOptions, RateResult, check_options;
- ``job``: ``run`` -- one run from start to end (folder lock, the steps below, closing);
- ``servers``: one client per model server that answers, and the model to ask for;
- ``selection``: the images not rated yet, and the repair of what a killed run left unwritten;
- ``schedule``: rendering and model calls in parallel, stop and give-up rules;
- ``ask``: one model call per image and the parsing of its answer;
- ``output``: the output thread and ExifTool; database row, sidecar and CSV row per image;
- ``report``: the events reported and the counts of the result (calling thread only).
"""

from aimeta.pipelines.rate.job import run
from aimeta.pipelines.rate.options import STAGE, RateOptions, RateResult, check_options
from aimeta.pipelines.rate.schedule import STOP_GRACE_S, UNREACHABLE_LIMIT

__all__ = [
    "STAGE",
    "STOP_GRACE_S",
    "UNREACHABLE_LIMIT",
    "RateOptions",
    "RateResult",
    "check_options",
    "run",
]
