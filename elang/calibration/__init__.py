"""Calibration: the threshold maths and certificates, the one calibration record, and each task's score collection."""
