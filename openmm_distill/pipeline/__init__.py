"""The main job: one config from molecules to a validated, compiled student (see :mod:`.runner`)."""
from openmm_distill.pipeline.config import PipelineConfig, load_pipeline_config
from openmm_distill.pipeline.runner import STAGES, PipelineResult, run_pipeline

__all__ = ["PipelineConfig", "PipelineResult", "STAGES", "load_pipeline_config", "run_pipeline"]
