"""The one config loader: the training recipe, the pipeline and sampling read YAML the same way."""
from __future__ import annotations

import pytest

from openmm_distill.config_loader import apply_overrides, parse_override
from openmm_distill.data.sampling import SamplingConfig
from openmm_distill.errors import ConfigError
from openmm_distill.pipeline.config import PipelineConfig, load_pipeline_config
from openmm_distill.training.config import load_config

PIPELINE_YAML = """
molecules: {train: [ethanol_like]}
sampling: {random_sigma: 1e-2, n_conformers: 2}
protocols: {nve_ps: 1e-1}
"""


def test_exponent_without_dot_is_a_float_everywhere(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; every config must read the number the user wrote.
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("optim:\n  lr: 1e-3\n")
    assert load_config(recipe).optim.lr == 0.001
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE_YAML)
    cfg = load_pipeline_config(str(pipeline), ["training.set.optim.lr=2e-4", "protocols.timestep_fs=5e-1"])
    assert cfg.protocols.nve_ps == 0.1 and cfg.protocols.timestep_fs == 0.5
    assert cfg.training.set == {"optim.lr": 2e-4}
    assert SamplingConfig.from_dict(cfg.sampling).random_sigma == 0.01
    sampling = tmp_path / "sampling.yaml"
    sampling.write_text("sampling:\n  random_sigma: 2e-2\n")
    assert SamplingConfig.from_yaml(str(sampling)).random_sigma == 0.02


def test_same_override_syntax_and_messages_everywhere(tmp_path):
    assert parse_override("model.elements=[1, 6]") == (["model", "elements"], [1, 6])
    assert parse_override("run.threads=null") == (["run", "threads"], None)
    # A free-form mapping takes the rest of the dotted key as one entry.
    values = apply_overrides({}, ["teacher.options.accuracy=0.5", "workers=3"], PipelineConfig,
                             exclude=("base_dir",))
    assert values == {"teacher": {"options": {"accuracy": 0.5}}, "workers": 3}
    with pytest.raises(ConfigError, match=r"unknown key 'nve_pss' in section 'protocols' \(did you mean 'nve_ps'\?\)"):
        apply_overrides({}, ["protocols.nve_pss=1"], PipelineConfig)
    with pytest.raises(ConfigError, match=r"unknown key 'lrr' in section 'optim' \(did you mean 'lr'\?\)"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"workers is a value, not a section"):
        apply_overrides({}, ["workers.count=1"], PipelineConfig)
    with pytest.raises(ConfigError, match=r"section.key=value"):
        parse_override("workers")


def test_wrong_types_are_named(tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE_YAML)
    with pytest.raises(ConfigError, match=r"protocols.nve = 'yes' must be true or false"):
        load_pipeline_config(str(pipeline), ["protocols.nve='yes'"])
    with pytest.raises(ConfigError, match=r"workers = 'many' must be an integer"):
        load_pipeline_config(str(pipeline), ["workers=many"])
    with pytest.raises(ConfigError, match=r"sampling.n_conformers = 2.5 must be an integer"):
        SamplingConfig.from_dict({"n_conformers": 2.5})
    with pytest.raises(ConfigError, match=r"section 'teacher' must be a mapping"):
        load_pipeline_config(str(pipeline), ["teacher=3"])
