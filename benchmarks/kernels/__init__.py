"""The kernels benchmark (`make kernels-bench`): every backend of every op of models/ops, and the
strongest outside implementation importable here, timed at LRA shapes. run.py is the entry
point; cases.py the inputs, flops.py the FLOP counts, peers.py the outside implementations,
timing.py the measurement, machine.py the header, report.py the Markdown."""
