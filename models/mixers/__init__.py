"""Sequence mixers. Every mixer is an nn.Module built as `Mixer(d_model=..., **its_options)` with

    forward(x: (B, L, D) float, mask: (B, L) bool, True at real positions) -> (B, L, D)

Padded positions of `x` arrive zeroed (the backbone does it); a mixer must also keep them from
influencing real positions (attention masks them as keys). A mixer may expose `backend: str`,
the kernel that computed it, which goes into the run record.
"""
