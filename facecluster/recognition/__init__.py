"""What a distance means: verification, identification, thresholds, calibrations."""
