"""Speed and memory against sequence length for any zoo model: the LRA paper's Table 2 protocol
(Tay et al., 2021, "Long Range Arena: A Benchmark for Efficient Transformers", section 4.2).

- settings.py: what a run measures (the defaults, written once);
- runner.py: one fresh process per (model, length), the CSV of rows, the machine header;
- worker.py: the process that builds a model and times its training steps;
- flops.py: FLOPs of a step and the device's peak, for MFU;
- report.py, plots.py: the Markdown summary beside the published table, and the plots.
"""
