"""Data bootstrapping (paper Section 3.4, Appendix A): captions -> rendered targets -> object masks.

`bootpig synth` turns an LLM (or the offline caption generator), a text-to-image model and a
text-prompted segmenter into the triplet folder of `model.triplets` that `bootpig train` reads.
"""
