"""Running trials on Ray, alike for the sweep and the study: the Ray session, the Tuner's fit, progress lines, logs."""
