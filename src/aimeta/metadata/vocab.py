"""Sampler and scheduler vocabulary: every UI's names mapped onto one set of ids.

The canonical ids are ComfyUI's snake-case ids (``euler_ancestral``, ``dpmpp_2m``,
``dpmpp_2m_sde``, ``karras``, ``sgm_uniform``...), because ComfyUI, SwarmUI and Fooocus already
write them and they name the algorithm, not a menu label. Inputs understood:

* A1111/Forge display names (``Euler a``, ``DPM++ 2M``, ``DPM2 a``, ``UniPC``...); names before
  A1111 1.9 carry the scheduler at the end (``DPM++ 2M Karras`` -> ``dpmpp_2m`` + ``karras``),
  newer ones write it separately as ``Schedule type``.
* ComfyUI ids, including the ``_gpu`` noise variants (same algorithm -> same id) and the old
  ``sample_`` prefix (``sample_dpmpp_2m``).
* InvokeAI/NovelAI ``k_`` prefixes (``k_lms``, ``k_euler_ancestral``, ``k_dpmpp_2``), InvokeAI 3
  ``_k`` = Karras suffixes (``dpmpp_2m_k``) and diffusers scheduler class names.

An unknown name is returned as a lower-snake version of itself, never ``None``.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SAMPLER_ALIASES = {
    "euler_a": "euler_ancestral",
    "eulera": "euler_ancestral",
    "euler_a_cfgpp": "euler_ancestral_cfg_pp",
    "euler_a_cfg_pp": "euler_ancestral_cfg_pp",
    "euler_ancestral_cfgpp": "euler_ancestral_cfg_pp",
    "euler_cfgpp": "euler_cfg_pp",
    "ddim_cfgpp": "ddim_cfg_pp",
    "dpmpp_2m_cfgpp": "dpmpp_2m_cfg_pp",
    "dpmpp_2s_a_cfgpp": "dpmpp_2s_ancestral_cfg_pp",
    "dpm2": "dpm_2",
    "dpm2_a": "dpm_2_ancestral",
    "dpm_2_a": "dpm_2_ancestral",
    "kdpm_2": "dpm_2",
    "kdpm_2_a": "dpm_2_ancestral",
    "dpmpp_2s_a": "dpmpp_2s_ancestral",
    "dpmpp_2_a": "dpmpp_2s_ancestral",  # InvokeAI 2.x k_dpmpp_2_a
    "dpmpp_2": "dpmpp_2m",  # InvokeAI 2.x k_dpmpp_2
    "unipc": "uni_pc",
    "pndm": "plms",
    "dpmpp_2m_sde_gpu": "dpmpp_2m_sde",
    "dpmpp_3m_sde_gpu": "dpmpp_3m_sde",
    "dpmpp_sde_gpu": "dpmpp_sde",
    "dpmpp_2m_sde_heun_gpu": "dpmpp_2m_sde_heun",
    "heun_pp2": "heunpp2",
    # diffusers scheduler classes (InvokeAI, scripts)
    "eulerdiscretescheduler": "euler",
    "eulerancestraldiscretescheduler": "euler_ancestral",
    "dpmsolvermultistepscheduler": "dpmpp_2m",
    "dpmsolversdescheduler": "dpmpp_sde",
    "ddimscheduler": "ddim",
    "ddpmscheduler": "ddpm",
    "pndmscheduler": "plms",
    "lmsdiscretescheduler": "lms",
    "heundiscretescheduler": "heun",
    "kdpm2discretescheduler": "dpm_2",
    "kdpm2ancestraldiscretescheduler": "dpm_2_ancestral",
    "unipcmultistepscheduler": "uni_pc",
    "lcmscheduler": "lcm",
    "deismultistepscheduler": "deis",
    "tcdscheduler": "tcd",
}

_SCHEDULER_ALIASES = {
    "ays": "align_your_steps",
    "align_your_steps_gits": "align_your_steps_gits",
    "gits": "align_your_steps_gits",
    "ddim": "ddim_uniform",
    "k": "karras",
    "polyexp": "polyexponential",
    "sgm": "sgm_uniform",
}

# Scheduler names that old A1111 (and InvokeAI 3's "_k") append to a sampler name. Longest first,
# so "sgm_uniform" is tried before "uniform".
_SCHEDULER_SUFFIXES = (
    ("_align_your_steps", "align_your_steps"),
    ("_sgm_uniform", "sgm_uniform"),
    ("_ddim_uniform", "ddim_uniform"),
    ("_polyexponential", "polyexponential"),
    ("_exponential", "exponential"),
    ("_kl_optimal", "kl_optimal"),
    ("_karras", "karras"),
    ("_uniform", "uniform"),
    ("_simple", "simple"),
    ("_normal", "normal"),
    ("_beta", "beta"),
    ("_turbo", "turbo"),
    ("_ays", "align_your_steps"),
    ("_k", "karras"),
)

_NON_WORD = re.compile(r"[^0-9a-z]+")
# Every parsed file normalises its sampler and scheduler, and a collection names only a few
# dozen distinct ones, so the results are cached (bounded: the names come from the files).
_CACHE_SIZE = 1024


def snake(name: str) -> str:
    """Lower-snake form of a display name: ``DPM++ 2M SDE`` -> ``dpmpp_2m_sde``."""
    text = name.strip().lower().replace("++", "pp").replace("+", "p")
    return _NON_WORD.sub("_", text).strip("_")


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_sampler(name: str) -> tuple[str | None, str | None]:
    """``(sampler_norm, scheduler_norm)`` for a sampler name as any UI writes it.

    The scheduler part is the one implied by the name itself (``DPM++ 2M Karras`` -> karras),
    ``None`` when the name implies none. ``(None, None)`` for an empty name.
    """
    key = snake(name)
    if not key:
        # Only punctuation or symbols: keep them rather than lose a non-empty name.
        text = name.strip().lower()
        return (text or None), None
    for prefix in ("sample_", "k_"):
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix) :]
    scheduler: str | None = None
    for suffix, scheduler_id in _SCHEDULER_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            key, scheduler = key[: -len(suffix)], scheduler_id
            break
    if key.endswith("_gpu") and len(key) > len("_gpu"):
        key = key[: -len("_gpu")]
    return _SAMPLER_ALIASES.get(key, key), scheduler


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_scheduler(name: str) -> str | None:
    """Canonical scheduler id (``Karras`` -> ``karras``, ``Align Your Steps`` ->
    ``align_your_steps``, A1111's ``DDIM`` schedule -> ``ddim_uniform``); ``None`` when empty."""
    key = snake(name)
    if not key:
        return name.strip().lower() or None
    return _SCHEDULER_ALIASES.get(key, key)
