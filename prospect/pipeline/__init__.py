"""Runs described by a config file: the prospectivity study behind ``prospect run`` and the case study.

    from prospect import pipeline
    config = pipeline.load_config("workflows/qinhang.toml", mode="quick")
    inputs = pipeline.check_inputs(config)
    pipeline.run(config, inputs, "out/qinhang")

The keys of the file are the keyword arguments of the API calls (``prospect keys`` lists them).
"""

from prospect.pipeline.config import SECTIONS, RunConfig, describe_sections, load_config
from prospect.pipeline.prospectivity import STAGES, Inputs, check_inputs, check_output, run
from prospect.pipeline.runfolder import RunFolder

__all__ = ["load_config", "RunConfig", "SECTIONS", "describe_sections", "check_inputs", "check_output", "Inputs", "run",
           "RunFolder", "STAGES"]
