"""The model repository: the one writer of stages and routers, config.pbtxt parsing, stage fingerprints."""
