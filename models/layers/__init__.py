"""Layers shared by several mixers (models/mixers/): attention projections and head layout, the
shell of the blockwise attentions, the feature maps of kernelised attention."""
