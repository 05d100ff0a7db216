"""The retraining job: healthy data to a signed, evaluated int8 model package."""
