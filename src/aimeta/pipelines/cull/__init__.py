"""The cull job: group a folder's images, rank each group with the model, decide, write.

    from aimeta.pipelines import cull
    result = cull.run(settings, cull.CullOptions(folder=Path("photos")), on_event=callback)

Steps of one run (each resumable: a killed run repeated redoes only what was not recorded):

1. **Metadata** (``aimeta all`` on the folder): every image gets its row in ``images`` (the id
   that ``cull_*`` rows reference) and its generation parameters (the AI batches).
2. **Signals** (:mod:`aimeta.rating.signals`) on the rendered JPEG, stored in
   ``cull_signals``; images measured before are not rendered again.
3. **Absolute scores**: ``aimeta rate`` for the images this model has not rated, recording
   into the database only (no sidecar, no CSV of its own).
4. **Groups** (:mod:`aimeta.rating.groups`) and **one request per group**: the group's images
   in order, each after a text part ``Image N``, answered by a best-first ``ranking``
   (:mod:`aimeta.rating.ranking`). A group larger than ``group_size`` is ranked in rounds of
   up to ``group_size`` images that all include the best so far, merged into one order. An
   invalid answer is asked again once, then the group is recorded as failed (its images keep
   their absolute scores). Each ranking is committed to ``cull_rankings`` as it arrives, keyed
   by the group's members and the model, so a re-run never ranks a group twice.
5. **Calibration** (:mod:`aimeta.rating.calibrate`) and the outputs: ``cull_decisions`` and
   ``cull_reasons``, the XMP sidecars (stars only where the user has set none, unless
   ``overwrite``; a Green/Red label for picks/rejects; keywords under ``aimeta cull``) and
   ``ai_cull_results_{model}.csv`` in the folder. These are recomputed from the database on
   every run, so an interrupted run followed by a complete one ends where an uninterrupted
   run ends.

``dry_run`` reads the folder and the database (never writes), measures the signals in memory
and reports the groups and the requests that would be sent.

The modules: ``options`` (CullOptions, CullResult, check_options), ``job`` (``run`` and the
steps above), ``library`` (what a run reads from the folder and the database; the dry run).
"""

from aimeta.pipelines.cull.job import run
from aimeta.pipelines.cull.library import read_ai_ratings
from aimeta.pipelines.cull.options import STAGE, CullOptions, CullResult, check_options

__all__ = ["STAGE", "CullOptions", "CullResult", "check_options", "read_ai_ratings", "run"]
