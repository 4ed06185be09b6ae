"""The counting pipeline: decode -> codes and text -> detect -> fuse -> rows.

One module per stage; data flows one way through :mod:`gateway.pipeline.run`.
"""
