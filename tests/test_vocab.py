"""Sampler and scheduler names from every UI map onto one vocabulary."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aimeta.metadata.vocab import normalize_sampler, normalize_scheduler


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Euler a", ("euler_ancestral", None)),
        ("Euler", ("euler", None)),
        ("DPM++ 2M", ("dpmpp_2m", None)),
        ("DPM++ 2M Karras", ("dpmpp_2m", "karras")),
        ("DPM++ 2M SDE", ("dpmpp_2m_sde", None)),
        ("DPM++ SDE Karras", ("dpmpp_sde", "karras")),
        ("DPM++ 2M SDE Heun Exponential", ("dpmpp_2m_sde_heun", "exponential")),
        ("DPM++ 2S a Karras", ("dpmpp_2s_ancestral", "karras")),
        ("UniPC", ("uni_pc", None)),
        ("DDIM", ("ddim", None)),
        ("LMS", ("lms", None)),
        ("Heun", ("heun", None)),
        ("DPM2 a", ("dpm_2_ancestral", None)),
        ("DPM adaptive", ("dpm_adaptive", None)),
        ("Restart", ("restart", None)),
        ("LCM", ("lcm", None)),
        ("Euler a CFG++", ("euler_ancestral_cfg_pp", None)),
        ("euler_ancestral", ("euler_ancestral", None)),
        ("dpmpp_2m", ("dpmpp_2m", None)),
        ("dpmpp_2m_sde_gpu", ("dpmpp_2m_sde", None)),
        ("dpmpp_sde", ("dpmpp_sde", None)),
        ("uni_pc", ("uni_pc", None)),
        ("k_lms", ("lms", None)),
        ("k_euler_ancestral", ("euler_ancestral", None)),
        ("sample_dpmpp_2m", ("dpmpp_2m", None)),
        ("dpmpp_2m_k", ("dpmpp_2m", "karras")),
        ("EulerAncestralDiscreteScheduler", ("euler_ancestral", None)),
        ("My Custom Sampler 3", ("my_custom_sampler_3", None)),
        ("", (None, None)),
    ],
)
def test_normalize_sampler(name: str, expected: tuple[str | None, str | None]) -> None:
    assert normalize_sampler(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Karras", "karras"),
        ("karras", "karras"),
        ("Exponential", "exponential"),
        ("normal", "normal"),
        ("simple", "simple"),
        ("SGM Uniform", "sgm_uniform"),
        ("sgm_uniform", "sgm_uniform"),
        ("Automatic", "automatic"),
        ("Align Your Steps", "align_your_steps"),
        ("align_your_steps", "align_your_steps"),
        ("beta", "beta"),
        ("ddim_uniform", "ddim_uniform"),
        ("DDIM", "ddim_uniform"),
        ("Uniform", "uniform"),
        ("KL Optimal", "kl_optimal"),
        ("", None),
    ],
)
def test_normalize_scheduler(name: str, expected: str | None) -> None:
    assert normalize_scheduler(name) == expected


@given(st.text())
def test_non_empty_names_never_become_none(name: str) -> None:
    sampler, _ = normalize_sampler(name)
    scheduler = normalize_scheduler(name)
    if name.strip():
        assert sampler and scheduler
    else:
        assert sampler is None and scheduler is None
