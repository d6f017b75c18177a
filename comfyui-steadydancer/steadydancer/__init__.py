"""SteadyDancer on ComfyUI core's Wan model: model, checkpoint layouts, model_base."""
