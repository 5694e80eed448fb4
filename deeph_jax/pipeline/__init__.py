"""The main job: the whole DeepH workflow on the shipped data, end to end."""
