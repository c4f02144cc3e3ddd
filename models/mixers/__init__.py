"""Sequence mixers. Every mixer is an nn.Module built as `Mixer(d_model=..., **its_options)` with

    forward(x: (B, L, D) float, mask: (B, L) bool, True at real positions) -> (B, L, D)

Padded positions of `x` arrive zeroed (the backbone does it); a mixer must also keep them from
influencing real positions (attention masks them as keys). A mixer names the ops it calls
(`ops = ("selective_scan",)`, models/ops/), whose backends that ran go into the run record; a
part that is the mixer's own (not an op) is named by `backend: str`. A mixer with ops has
`reference(x, mask)`: the same forward with every op in its step-by-step reference form.
"""
