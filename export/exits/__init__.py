"""Multi-exit encoders: the model, slenderizing (COST-EFF), export into segments."""
